"""The `cli` component: the user's side of cf commands (parsing, the push
conversation, printing)."""
