"""``shipmate daemon | up | down | status | info``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from typing import Any

from shipmate import config as config_mod
from shipmate.cli import output
from shipmate.cli.registry import Context, arg, command
from shipmate.daemon import process
from shipmate.errors import DaemonUnavailableError, ShipmateError


@command("daemon", "run the daemon in the foreground (`up` runs it in the background)")
async def daemon_cmd(ctx: Context, args: argparse.Namespace) -> int:
    from shipmate.daemon.main import run_daemon

    logging.basicConfig(
        level=logging.DEBUG if ctx.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    process.write_pidfile(ctx.config)
    try:
        await run_daemon(ctx.config)
    finally:
        process.remove_pidfile(ctx.config)
    return 0


@command("up", "start the daemon in the background and wait until it answers",
         arg("--timeout", type=float, default=60.0, help="seconds to wait for it to answer"))
async def up(ctx: Context, args: argparse.Namespace) -> int:
    pid = process.read_pid(ctx.config)
    if pid is not None:
        output.step(f"Shipmate daemon already running (pid {pid})")
        return 0
    output.step("Starting Shipmate daemon")
    pid = process.spawn(ctx.config)
    status = await _wait_for_status(ctx, pid, args.timeout)
    output.detail(f"pid {status['daemon']['pid']}, socket {ctx.config.socket}")
    output.detail(f"log {process.logfile(ctx.config)}")
    return 0


async def _wait_for_status(ctx: Context, pid: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    client = ctx.client()
    while True:
        try:
            result: dict[str, Any] = await client.request("GET", "/v1/status", timeout=5)
            return result
        except DaemonUnavailableError:
            if not process._alive(pid):
                raise ShipmateError(
                    "the daemon exited during start-up",
                    hint=f"see {process.logfile(ctx.config)}") from None
            if time.monotonic() > deadline:
                raise ShipmateError(f"the daemon did not answer within {timeout:.0f}s",
                                    hint=f"see {process.logfile(ctx.config)}") from None
            await asyncio.sleep(0.2)


@command("down", "stop the background daemon")
async def down(ctx: Context, args: argparse.Namespace) -> int:
    pid = await asyncio.to_thread(process.stop, ctx.config)
    if pid is None:
        output.step("Shipmate daemon is not running")
    else:
        output.step(f"Stopped Shipmate daemon (pid {pid})")
    return 0


@command("status", "show what the daemon runs, its store and its Docker engine")
async def status(ctx: Context, args: argparse.Namespace) -> int:
    data = await ctx.client().request("GET", "/v1/status")
    if ctx.format == "json":
        output.as_json(data)
        return 0
    d, s, e = data["daemon"], data["store"], data["engine"]
    output.report("Shipmate daemon", [
        ("Pid", d["pid"]), ("Version", d["version"]), ("Machine", d["machine_id"]),
        ("Uptime", f"{d['uptime']}s"), ("Socket", d["socket"]),
        ("Store", f"{s['backend']} (revision {s['revision']})"),
        ("Docker engine", e.get("version") or f"unavailable: {e.get('error')}"),
    ])
    for comp in data["components"]:
        extra = f" ({comp['error']})" if comp.get("error") else ""
        output.detail(f"{comp['name']}: {comp['state']}{extra}")
    return 0


@command("info", "show every setting: value, environment variable and meaning")
async def info(ctx: Context, args: argparse.Namespace) -> int:
    rows = config_mod.describe(ctx.config)
    if ctx.format == "json":
        output.as_json(rows)
    else:
        output.table(rows, ["name", "value", "env", "help"])
    return 0
