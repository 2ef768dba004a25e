"""Downstream (server-side) and upstream (client-side) endpoints; each is a pair of anyio streams."""
