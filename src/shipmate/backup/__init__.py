"""Backup and restore of the whole platform (``shipmate backup create|restore|verify``).

One gzip'd tar archive holds a consistent store snapshot, every app's git repository as a
bundle, the cluster CA's directory, service dumps, the storage root's directories
(:mod:`.storage`) and a ``manifest.json`` with a SHA-256 per
member (:mod:`.manifest`); :mod:`.archive` writes, reads and verifies it, :mod:`.create` makes
it on the daemon, :mod:`.restore` brings a fresh machine back from it and :mod:`.schedule`
makes one on a cron schedule with retention. docs/backup.md is the user's side.
"""
