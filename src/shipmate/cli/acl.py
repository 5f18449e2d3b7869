"""The dokku-acl plugin's ``acl:add|remove|list``: the non-admin SSH keys (and dashboard users)
that may act on an app. Admin keys only (``paas/aclpolicy.py``)."""

from __future__ import annotations

import argparse
import sys

from shipmate.cli import output
from shipmate.cli.common import APP, FMT, app_of
from shipmate.cli.registry import Context, arg, command

NAME = arg("name", help="an SSH key's name (ssh-keys:list) or a dashboard user's")


@command("acl:add", "allow a non-admin key or user to act on an app", APP, NAME)
async def acl_add(ctx: Context, args: argparse.Namespace) -> int:
    app = app_of(args)
    data = await ctx.client().request("POST", f"/v1/apps/{app}/acl",
                                      json_body={"name": args.name})
    output.step(f"Allowed {args.name} to act on {app}")
    if data.get("admin"):
        output.detail(f"{args.name} is an admin: admins act on every app anyway")
    elif not data.get("known"):
        output.detail(f"no SSH key or dashboard user is named {args.name} yet",
                      out=sys.stderr)
    return 0


@command("acl:remove", "stop a key or user acting on an app", APP, NAME)
async def acl_remove(ctx: Context, args: argparse.Namespace) -> int:
    from shipmate.paas.acl import validate_principal

    app = app_of(args)
    await ctx.client().request("DELETE", f"/v1/apps/{app}/acl/{validate_principal(args.name)}")
    output.step(f"Revoked {args.name}'s access to {app}")
    return 0


@command("acl:list", "list the keys and users (besides admins) that may act on an app",
         APP, FMT)
async def acl_list(ctx: Context, args: argparse.Namespace) -> int:
    data = await ctx.client().request("GET", f"/v1/apps/{app_of(args)}/acl")
    if ctx.format == "json":
        output.as_json(data["names"])
        return 0
    for name in data["names"]:
        print(name)
    return 0
