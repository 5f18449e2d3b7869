"""The per-machine daemon: its HTTP API on a unix socket, its components, and its client."""
