"""Dokku's ``ssh-keys:add|list|remove``: the keys allowed to push and run commands."""

from __future__ import annotations

import argparse
import sys

from shipmate.cli import output
from shipmate.cli.common import FMT
from shipmate.cli.inputs import read_file, read_stdin
from shipmate.cli.registry import Context, arg, command


@command("ssh-keys:add", "allow an SSH public key to push and run commands (on the apps "
         "acl:add grants it, or on everything with --admin; the first key is an admin)",
         arg("name"), arg("file", nargs="?", default="-", help="public key file, or - for stdin"),
         arg("--admin", action="store_true",
             help="an admin key: every app, the cluster, keys and global settings"))
async def ssh_keys_add(ctx: Context, args: argparse.Namespace) -> int:
    # Over SSH the key always comes on standard input: no path on the server is opened.
    text = read_stdin("the public key") if ctx.remote else read_file(args.file, "the public key")
    rec = await ctx.client().request("POST", "/v1/ssh-keys",
                                     json_body={"name": args.name, "key": text,
                                                "admin": args.admin})
    print(rec["fingerprint"])
    if rec.get("admin") and not args.admin:
        output.detail(f"{args.name} is an admin: it is the first key added", out=sys.stderr)
    return 0


@command("ssh-keys:list", "list allowed SSH keys", FMT)
async def ssh_keys_list(ctx: Context, args: argparse.Namespace) -> int:
    keys = await ctx.client().request("GET", "/v1/ssh-keys")
    if ctx.format == "json":
        output.as_json([{"name": k["name"], "fingerprint": k["fingerprint"],
                         "admin": k.get("admin", True)} for k in keys])
        return 0
    for k in keys:  # Dokku's line, and whether the key is an admin
        admin = "true" if k.get("admin", True) else "false"
        print(f'{k["fingerprint"]}  NAME="{k["name"]}" SSHCOMMAND_ALLOWED_KEYS="none" '
              f'ADMIN="{admin}"')
    return 0


@command("ssh-keys:remove", "stop allowing an SSH key", arg("name"))
async def ssh_keys_remove(ctx: Context, args: argparse.Namespace) -> int:
    from shipmate.paas.sshkeys import validate_key_name

    # checked before it becomes part of a URL: `../apps/x` must not reach another route
    await ctx.client().request("DELETE", f"/v1/ssh-keys/{validate_key_name(args.name)}")
    output.step(f"Removed key {args.name}")
    return 0
