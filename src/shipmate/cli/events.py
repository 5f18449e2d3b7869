"""``shipmate events``: the audit trail, newest last (``-f`` keeps printing new ones)."""

from __future__ import annotations

import argparse
import json

from shipmate.cli.registry import Context, arg, command


@command("events", "show what changed, who changed it and when (the audit trail)",
         arg("--app", default="", help="only the events of this app"),
         arg("-n", "--num", type=int, default=20, help="how many recent events to show"),
         arg("-f", "--follow", action="store_true", help="keep printing new events"),
         arg("--no-legend", action="store_true", help="leave out the column names"),
         arg("--format", choices=("text", "json"), default=None,
             help="output format (json: one object per line)"))
async def events(ctx: Context, args: argparse.Namespace) -> int:
    from shipmate.web.events import AuditEvent, legend, render_row

    params = {"n": str(args.num), "follow": "1" if args.follow else "0"}
    if args.app:
        params["app"] = args.app
    as_json = ctx.format == "json"
    if not as_json and not args.no_legend:
        print(legend(), flush=True)
    async for line in ctx.client().stream("GET", "/v1/events", params=params):
        if not line:  # the daemon's heartbeat while following
            continue
        data = json.loads(line)
        print(json.dumps(data, sort_keys=True) if as_json
              else render_row(AuditEvent.from_json(data)), flush=True)
    return 0
