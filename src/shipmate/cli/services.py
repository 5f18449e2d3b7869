"""dokku-postgres / dokku-redis commands, built in: ``postgres:*`` and ``redis:*``."""

from __future__ import annotations

import argparse
import os
import posixpath
import shutil
import sys

from shipmate.cli import output
from shipmate.cli.common import APP, FMT, flag_args, single_value, stream_out
from shipmate.cli.registry import CommandFunc, Context, arg, command
from shipmate.errors import ValidationError
from shipmate.spec.names import validate_app_name

NAME = arg("name", help="service name")
_INFO = [("--dsn", "Dsn", "dsn"), ("--links", "Links", "links"),
         ("--status", "Status", "status"), ("--version", "Version", "version"),
         ("--id", "Id", "id"), ("--internal-ip", "Internal ip", "internal_ip"),
         ("--exposed-ports", "Exposed ports", "exposed_ports"),
         ("--data-dir", "Data dir", "data_dir"), ("--service-root", "Service root",
                                                  "service_root"),
         ("--machine", "Machine", "machine"), ("--network", "Network", "network"),
         ("--backup-schedule", "Backup schedule", "backup_schedule"),
         ("--backup-next", "Backup next", "backup_next"),
         ("--backup-last", "Backup last", "backup_last")]
_TITLES = {"postgres": "Postgres", "redis": "Redis"}
_VERSIONS = {"postgres": "15", "redis": "7"}


def _base(kind: str, args: argparse.Namespace) -> str:
    from shipmate.services.model import validate_service_name

    return f"/v1/services/{kind}/{validate_service_name(args.name)}"


def _create(kind: str) -> CommandFunc:
    async def run(ctx: Context, args: argparse.Namespace) -> int:
        from shipmate.services.model import validate_service_name

        return await stream_out(ctx, "POST", f"/v1/services/{kind}", {
            "name": validate_service_name(args.name), "version": args.image_version})
    return run


def _link(kind: str, verb: str) -> CommandFunc:
    async def run(ctx: Context, args: argparse.Namespace) -> int:
        body = {"app": validate_app_name(args.app), "alias": getattr(args, "alias", "") or ""}
        return await stream_out(ctx, "POST", f"{_base(kind, args)}/{verb}", body)
    return run


def _simple(kind: str, method: str, suffix: str) -> CommandFunc:
    async def run(ctx: Context, args: argparse.Namespace) -> int:
        return await stream_out(ctx, method, _base(kind, args) + suffix)
    return run


def _info(kind: str) -> CommandFunc:
    async def run(ctx: Context, args: argparse.Namespace) -> int:
        data = await ctx.client().request("GET", _base(kind, args))
        if ctx.format == "json":
            output.as_json(data)
            return 0
        items = [(flag, label, data.get(key, "")) for flag, label, key in _INFO]
        if not single_value(args.flag, items):
            output.report(f"{_TITLES[kind]} service information: {args.name}",
                          [(label, v) for _, label, v in items])
        return 0
    return run


def _list(kind: str) -> CommandFunc:
    async def run(ctx: Context, args: argparse.Namespace) -> int:
        rows = await ctx.client().request("GET", f"/v1/services/{kind}")
        if ctx.format == "json":
            output.as_json(rows)
        elif not rows:
            output.step(f"There are no {_TITLES[kind]} services")
        else:
            output.table(rows, ["name", "version", "status", "exposed_ports", "links"])
        return 0
    return run


def _destroy(kind: str) -> CommandFunc:
    async def run(ctx: Context, args: argparse.Namespace) -> int:
        if not args.force:
            if not sys.stdin.isatty():
                raise ValidationError(f"Refusing to destroy {args.name} without confirmation",
                                      hint=f"run `{kind}:destroy {args.name} --force`")
            output.error("WARNING: Potentially Destructive Action")
            output.error(f"This command will destroy {args.name} {_TITLES[kind]} service "
                         "and its data.")
            if input(f" !     To proceed, type \"{args.name}\"\n\n> ").strip() != args.name:
                output.error("Confirmation did not match. Aborted.")
                return 1
        return await stream_out(ctx, "DELETE", _base(kind, args))
    return run


def _export(kind: str) -> CommandFunc:
    async def run(ctx: Context, args: argparse.Namespace) -> int:
        if sys.stdout.isatty():
            raise ValidationError("Refusing to write a binary dump to a terminal",
                                  hint=f"redirect it: {kind}:export {args.name} > dump")
        out = sys.stdout.buffer
        async for chunk in ctx.client().download("GET", _base(kind, args) + "/export"):
            out.write(chunk)
        out.flush()
        return 0
    return run


def _upload(kind: str, verb: str) -> CommandFunc:
    async def run(ctx: Context, args: argparse.Namespace) -> int:
        base = _base(kind, args)
        if verb == "connect" and sys.stdin.isatty() and not ctx.remote:
            return await _interactive(ctx, kind, base)
        if sys.stdin.isatty():
            raise ValidationError(f"{kind}:{verb} reads from standard input",
                                  hint=f"run `{kind}:{verb} {args.name} < FILE`")
        data = sys.stdin.buffer.read()
        async for line in ctx.client().stream("POST", f"{base}/{verb}", data=data or b"\n"):
            print(line, flush=True)
        return 0
    return run


async def _interactive(ctx: Context, kind: str, base: str) -> int:
    """A terminal on this machine: psql / redis-cli inside the service's own container."""
    info = await ctx.client().request("GET", base)
    docker = shutil.which("docker")
    if not info.get("id") or docker is None:
        raise ValidationError("the service does not run on this machine (or no docker CLI)",
                              hint="pipe statements in: postgres:connect NAME < script.sql")
    shell = ('exec psql -U postgres -d "$POSTGRES_DB"' if kind == "postgres"
             else 'exec redis-cli --no-auth-warning -a "$REDIS_PASSWORD"')
    os.execv(docker, [docker,  # noqa: S606 - replaces the CLI with an interactive terminal "-H", ctx.config.docker_host, "exec", "-it", info["id"],
                      "/bin/sh", "-c", shell])
    return 0  # not reached


def _server_dir(path: str) -> str:
    """A relative DIR is taken from where the CLI runs (the daemon's machine)."""
    return posixpath.normpath(posixpath.join(os.getcwd(), path))


def _backup(kind: str) -> CommandFunc:
    async def run(ctx: Context, args: argparse.Namespace) -> int:
        # DIR is a path of this machine (the daemon's): relative to where the CLI runs.
        return await stream_out(ctx, "POST", _base(kind, args) + "/backup",
                                {"dir": _server_dir(args.dir)})
    return run


def _schedule(kind: str) -> CommandFunc:
    async def run(ctx: Context, args: argparse.Namespace) -> int:
        body = {"cron": args.cron, "dir": _server_dir(args.dir), "keep": args.keep}
        return await stream_out(ctx, "PUT", _base(kind, args) + "/backup-schedule", body)
    return run


def _expose(kind: str) -> CommandFunc:
    async def run(ctx: Context, args: argparse.Namespace) -> int:
        return await stream_out(ctx, "POST", _base(kind, args) + "/expose",
                                {"port": args.port or 0})
    return run


def _register_more(kind: str) -> None:
    """Backups and host ports."""
    title = _TITLES[kind]
    where = "a directory of the machine that runs it"
    command(f"{kind}:backup", f"write a backup of a {title} service to {where}", NAME,
            arg("dir", help="directory on this machine"))(_backup(kind))
    command(f"{kind}:backup-schedule", f"back a {title} service up on a cron schedule to "
            f"{where}", NAME, arg("cron", help='schedule, e.g. "0 3 * * *" or @daily (UTC)'),
            arg("dir", help="directory on the machine that runs the service"),
            arg("--keep", type=int, default=7,
                help="keep the newest N scheduled backups (default 7)"))(_schedule(kind))
    command(f"{kind}:backup-unschedule", f"stop the scheduled backups of a {title} service",
            NAME)(_simple(kind, "DELETE", "/backup-schedule"))
    command(f"{kind}:expose", f"publish a {title} service on a host port", NAME,
            arg("port", nargs="?", type=int, default=0,
                help="host port (default: a free one)"))(_expose(kind))
    command(f"{kind}:unexpose", f"remove a {title} service's host port", NAME)(
        _simple(kind, "POST", "/unexpose"))


def _register(kind: str) -> None:
    title = _TITLES[kind]
    command(f"{kind}:create", f"create a {title} service", NAME,
            arg("--image-version", default=_VERSIONS[kind],
                help=f"{title} version (default {_VERSIONS[kind]})"))(_create(kind))
    command(f"{kind}:link", f"link a {title} service to an app (sets its URL, redeploys)",
            NAME, APP, arg("--alias", default="", help="set ALIAS_URL instead"))(
        _link(kind, "link"))
    command(f"{kind}:unlink", f"unlink a {title} service from an app (redeploys)", NAME, APP)(
        _link(kind, "unlink"))
    command(f"{kind}:info", f"show a {title} service", NAME, FMT,
            *flag_args([f for f, _, _ in _INFO]))(_info(kind))
    command(f"{kind}:list", f"list {title} services", FMT)(_list(kind))
    command(f"{kind}:restart", f"restart a {title} service", NAME)(
        _simple(kind, "POST", "/restart"))
    command(f"{kind}:destroy", f"destroy a {title} service and its data (not while linked)",
            NAME, arg("--force", "-f", action="store_true",
                      help="do not ask for confirmation"))(_destroy(kind))
    command(f"{kind}:export", f"write a dump of a {title} service to standard output",
            NAME)(_export(kind))
    command(f"{kind}:import", f"load a dump from standard input into a {title} service",
            NAME)(_upload(kind, "import"))
    command(f"{kind}:connect", f"a {title} shell (or run statements from standard input)",
            NAME)(_upload(kind, "connect"))


for _kind in ("postgres", "redis"):
    _register(_kind)
    _register_more(_kind)
