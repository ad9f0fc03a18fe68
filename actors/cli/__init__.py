"""The `cli` component: the cf CLI's side of every command."""
