"""``users:add|list|remove``: who may log in to the dashboard (docs/dashboard.md). Local
only: over SSH these commands are refused (``paas.sshpolicy``)."""

from __future__ import annotations

import argparse
import getpass
import sys

from shipmate.cli import output
from shipmate.cli.common import FMT
from shipmate.cli.registry import Context, arg, command
from shipmate.errors import ValidationError


def read_password(from_stdin: bool) -> str:
    """The new password: the first line of standard input, or typed twice at a prompt."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise ValidationError("no terminal to ask for the password",
                              hint="give it on standard input with --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password (again): ") != first:
        raise ValidationError("the two passwords differ", hint="run users:add again")
    return first


@command("users:add", "allow a user to log in to the dashboard (password prompted)",
         arg("name"), arg("--admin", action="store_true",
                          help="sees and acts on every app (others: the apps granted to them)"),
         arg("--password-stdin", action="store_true",
             help="read the password from the first line of standard input"))
async def users_add(ctx: Context, args: argparse.Namespace) -> int:
    password = read_password(args.password_stdin)
    rec = await ctx.client().request("POST", "/v1/users", json_body={
        "name": args.name, "password": password, "admin": args.admin})
    output.step(f"Added user {rec['name']}" + (" (admin)" if rec["admin"] else ""))
    return 0


@command("users:list", "list the dashboard's users", FMT)
async def users_list(ctx: Context, args: argparse.Namespace) -> int:
    users = await ctx.client().request("GET", "/v1/users")
    if ctx.format == "json":
        output.as_json(users)
        return 0
    output.header("Dashboard users")
    for u in users:
        print(f"{u['name']}{'  (admin)' if u['admin'] else ''}")
    return 0


@command("users:remove", "stop a user from logging in (ends their sessions)", arg("name"))
async def users_remove(ctx: Context, args: argparse.Namespace) -> int:
    await ctx.client().request("DELETE", f"/v1/users/{args.name}")
    output.step(f"Removed user {args.name}")
    return 0
