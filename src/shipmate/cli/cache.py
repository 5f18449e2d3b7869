"""``shipmate cache serve|stats|gc``: the package cache."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

from shipmate.cli import output
from shipmate.cli.registry import Context, arg, command
from shipmate.errors import ShipmateError

STATS_PATH = "/_shipmate/cache/stats.json"
GC_PATH = "/_shipmate/cache/gc"


@command("cache serve", "run the package cache in the foreground (without the daemon)",
         arg("--port", type=int, default=None, help="port (default: cache_port, 3142)"),
         arg("--bind", default=None, help="address to listen on (default: cache_bind)"))
async def serve(ctx: Context, args: argparse.Namespace) -> int:
    """Run :class:`CacheServer` until interrupted."""
    from shipmate.cache.server import CacheServer

    overrides: dict[str, Any] = {}
    if args.port is not None:
        overrides["cache_port"] = args.port
    if args.bind:
        overrides["cache_bind"] = args.bind
    logging.basicConfig(level=logging.DEBUG if ctx.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = CacheServer(ctx.config.with_overrides(**overrides))
    await server.start()
    output.step(f"package cache listening on {ctx.config.with_overrides(**overrides).cache_bind}"
                f":{server.port} (storage {server.storage.root})")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        output.step("stopping the package cache")
        await server.stop()
    return 0


async def _ask(ctx: Context, method: str, path: str) -> Any:
    import aiohttp  # here, not at module level: every CLI command imports this module

    url = f"http://127.0.0.1:{ctx.config.cache_port}{path}"
    try:
        async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
                    session.request(method, url) as resp):
            if resp.status != 200:
                raise ShipmateError(f"the cache answered {resp.status}: "
                                    f"{(await resp.text()).strip()}")
            return await resp.json(content_type=None)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise ShipmateError(
            f"no package cache answers on 127.0.0.1:{ctx.config.cache_port} ({exc})",
            hint="start it with `shipmate cache serve` or `shipmate up`") from exc


@command("cache stats", "hits, misses and bytes of the running package cache, per format")
async def stats(ctx: Context, args: argparse.Namespace) -> int:
    """Print the running cache's counters."""
    snap = await _ask(ctx, "GET", STATS_PATH)
    if ctx.format == "json":
        output.as_json(snap)
        return 0
    rows = [{"format": fmt, **counters}
            for fmt, counters in [*snap["formats"].items(), ("total", snap["total"])]]
    output.header("Package cache")
    output.table(rows, ["format", "requests", "hits", "revalidated", "misses", "errors",
                        "upstream_fetches", "bytes_from_cache", "bytes_from_upstream"])
    store = snap["storage"]
    output.report("Storage", [("Entries", store["entries"]), ("Bytes", store["bytes"]),
                              ("Max bytes", store["max_bytes"]),
                              ("Downloads in progress", store["downloads_in_progress"]),
                              ("Refused requests", snap["refused"]),
                              ("Verified downloads", snap["verified"]),
                              ("Verification failures", snap["verify_failures"]),
                              ("Over the per-client cap", snap.get("over_cap", 0))])
    return 0


@command("cache gc", "drop broken entries, leftover temp files and orphans; enforce the size cap")
async def gc(ctx: Context, args: argparse.Namespace) -> int:
    """Ask the running cache to collect garbage, or do it on the directory when none runs."""
    try:
        report = await _ask(ctx, "POST", GC_PATH)
        where = "running cache"
    except ShipmateError:
        report = await asyncio.to_thread(_offline_gc, Path(ctx.config.cache_dir),
                                         int(ctx.config.cache_max_bytes))
        where = str(ctx.config.cache_dir)
    if ctx.format == "json":
        output.as_json(report)
        return 0
    output.report(f"Cache gc ({where})", [(k.replace("_", " ").capitalize(), v)
                                          for k, v in report.items()])
    return 0


def _offline_gc(root: Path, max_bytes: int) -> dict[str, int]:
    from shipmate.cache.storage import Storage

    if not root.is_dir():
        raise ShipmateError(f"no cache directory at {root}", hint="set SHIPMATE_CACHE_DIR")
    storage = Storage(root, max_bytes)
    storage.open()
    try:
        return storage.gc()
    finally:
        storage.close()
