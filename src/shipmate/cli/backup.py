"""``shipmate backup create|restore|verify FILE``: back up the whole platform, bring it back
on a fresh machine, check an archive (docs/backup.md). ``create`` and ``restore`` run on
the daemon (the file is this machine's); ``verify`` reads the file here and needs no daemon.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from shipmate.cli import output
from shipmate.cli.common import FMT, stream_out
from shipmate.cli.registry import Context, arg, command

FILE = arg("file", help="the archive (a path on this machine)")


def _absolute(name: str) -> str:
    return str(Path(name).expanduser().absolute())


@command("backup create", "write a backup of the whole platform to FILE (.tar.gz)", FILE)
async def create(ctx: Context, args: argparse.Namespace) -> int:
    """Stream the daemon's progress while it writes the archive."""
    return await stream_out(ctx, "POST", "/v1/backup/create", {"path": _absolute(args.file)})


@command("backup restore", "restore the platform from a backup archive (on a fresh machine)",
         FILE, arg("--force", action="store_true",
                   help="restore over a platform that already has apps or services"))
async def restore(ctx: Context, args: argparse.Namespace) -> int:
    """Stream the restore's progress; exits 1 when anything could not be restored."""
    return await stream_out(ctx, "POST", "/v1/backup/restore",
                            {"path": _absolute(args.file), "force": bool(args.force)})


@command("backup verify", "check a backup archive: manifest, checksums, git bundles", FILE, FMT)
async def verify(ctx: Context, args: argparse.Namespace) -> int:
    """Read the archive through; exit 1 and say what is wrong when it is not sound."""
    import asyncio

    from shipmate.backup.archive import verify as check

    path = Path(_absolute(args.file))
    if ctx.format != "json":
        output.step(f"Reading {path}")
    report = await asyncio.to_thread(check, path)
    if ctx.format == "json":
        output.as_json(report.to_json())
        return 0 if report.ok else 1
    if report.manifest is not None:
        m = report.manifest
        output.step(f"Made {m.created} on {m.machine} by Shipmate {m.version}, store revision "
                    f"{m.store_revision}: {len(m.apps)} app(s), {len(m.services)} service(s), "
                    f"{len(m.members)} member(s)")
        for size in m.storage:
            output.detail(f"storage {size.name}: {size.files} file(s), {size.bytes} bytes")
        for note in m.notes:
            output.detail(f"left out when made: {note}")
    if report.ok:
        output.header(f"{path} is sound: every checksum matches and every bundle verifies")
        return 0
    for problem in report.problems:
        output.error(problem)
    output.error(f"{path} is NOT a sound backup ({len(report.problems)} problem(s))")
    return 1
