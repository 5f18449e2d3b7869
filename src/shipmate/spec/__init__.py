"""Pure data: container specs, unit files, manifests. No I/O here."""
