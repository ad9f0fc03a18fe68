"""The `bbs` component: Diego's BBS. `actor` handles its messages, `books`
holds its records, `convergence` plans what convergence does, `backoff` is
Diego's crash restart policy."""
