"""Dokku's ``cron:*`` commands: an app's scheduled tasks (app.json ``cron`` entries)."""

from __future__ import annotations

import argparse
from typing import Any

from shipmate.cli import output
from shipmate.cli.common import APP, FMT, app_of
from shipmate.cli.registry import Context, arg, command

CRON_ID = arg("id", metavar="CRON_ID", help="the task's id, as cron:list shows it")


def _last(row: dict[str, Any]) -> str:
    run = row.get("last_run")
    if not run:
        return "-"
    when = run.get("slot") or "manual"
    if run.get("error"):
        return f"{when} failed: {run['error']}"
    if run.get("exit_code") is None:
        return f"{when} running on {run.get('machine', '?')}"
    return f"{when} exit {run['exit_code']} in {float(run.get('duration') or 0):.1f}s"


def _next(row: dict[str, Any]) -> str:
    if row.get("maintenance"):
        return "maintenance"
    if row.get("suspended"):
        return "suspended"
    return str(row.get("next_run") or "-")


@command("cron:list", "list an app's scheduled tasks, their next run and last result", APP,
         FMT)
async def cron_list(ctx: Context, args: argparse.Namespace) -> int:
    app = app_of(args)
    rows = await ctx.client().request("GET", f"/v1/apps/{app}/cron")
    if ctx.format == "json":
        output.as_json(rows)
        return 0
    output.header(f"{app} cron tasks")
    output.table([{"id": r["id"], "schedule": r["schedule"], "command": r["command"],
                   "next run": _next(r), "last run": _last(r)} for r in rows],
                 ["id", "schedule", "command", "next run", "last run"])
    return 0


@command("cron:run", "run one of an app's scheduled tasks now, once", APP, CRON_ID,
         arg("--detach", action="store_true",
             help="start it in the background and return (cron:list shows its result)"))
async def cron_run(ctx: Context, args: argparse.Namespace) -> int:
    code = 0
    async for line in ctx.client().stream(
            "POST", f"/v1/apps/{app_of(args)}/cron/{args.id}/run",
            json_body={"detach": bool(args.detach)}):
        if line.startswith("\0exit "):
            code = int(line.split()[1])
        else:
            print(line, flush=True)
    return code


@command("cron:suspend", "stop a scheduled task from running until cron:resume", APP, CRON_ID)
async def cron_suspend(ctx: Context, args: argparse.Namespace) -> int:
    app = app_of(args)
    res = await ctx.client().request("POST", f"/v1/apps/{app}/cron/{args.id}/suspend")
    output.step(f"Suspended cron task {args.id} of {app}" if res.get("changed")
                else f"Cron task {args.id} of {app} was suspended already")
    return 0


@command("cron:resume", "run a suspended scheduled task again, from its next slot", APP,
         CRON_ID)
async def cron_resume(ctx: Context, args: argparse.Namespace) -> int:
    app = app_of(args)
    res = await ctx.client().request("POST", f"/v1/apps/{app}/cron/{args.id}/resume")
    output.step(f"Resumed cron task {args.id} of {app}" if res.get("changed")
                else f"Cron task {args.id} of {app} was not suspended")
    return 0
