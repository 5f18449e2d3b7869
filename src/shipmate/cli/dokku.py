"""Dokku's everyday commands beyond a push: ``resource:*``, ``ps:rebuild``, ``apps:rename``,
``apps:clone``, ``ports:*``, ``enter``, ``git:from-image`` and ``git:load-image``."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator
from typing import Any

from shipmate.cli import output
from shipmate.cli.common import APP, FMT, app_of, single_value, stream_out
from shipmate.cli.registry import Context, arg, command
from shipmate.errors import ValidationError
from shipmate.spec.names import validate_app_name

PROC = arg("--process-type", default="", help="only this process type (default: all)")
SKIP = arg("--skip-deploy", action="store_true", help="do not deploy the app now")
_RESOURCE_OPTS = (arg("--memory", default=None, help="memory: 256m, 1g (a number is MB)"),
                  arg("--cpu", default=None, help="CPUs: 0.5 is half a CPU"))


# resources ------------------------------------------------------------------------------------

async def _resources(ctx: Context, args: argparse.Namespace, kind: str, clear: bool) -> int:
    values = {k: v for k, v in (("memory", getattr(args, "memory", None)),
                                ("cpu", getattr(args, "cpu", None))) if v is not None}
    if not clear and not values:
        raise ValidationError("No resource given", hint="use --memory and/or --cpu")
    await ctx.client().request("POST", f"/v1/apps/{app_of(args)}/resources", json_body={
        "kind": kind, "process_type": args.process_type, "set": values, "clear": clear})
    scope = f" ({args.process_type})" if args.process_type else ""
    if clear:
        output.step(f"Cleared resource {kind}s of {args.app}{scope}")
    else:
        output.step(f"Setting resource {kind}s of {args.app}{scope}")
        for key, value in values.items():
            output.detail(f"{key}: {value}")
    output.detail(f"takes effect on the next deploy (ps:restart {args.app})")
    return 0


@command("resource:limit", "limit memory and CPU of an app's processes", APP, PROC,
         *_RESOURCE_OPTS)
async def resource_limit(ctx: Context, args: argparse.Namespace) -> int:
    return await _resources(ctx, args, "limit", False)


@command("resource:reserve", "reserve memory and CPU for an app's processes", APP, PROC,
         *_RESOURCE_OPTS)
async def resource_reserve(ctx: Context, args: argparse.Namespace) -> int:
    return await _resources(ctx, args, "reserve", False)


@command("resource:limit-clear", "remove an app's resource limits", APP, PROC)
async def resource_limit_clear(ctx: Context, args: argparse.Namespace) -> int:
    return await _resources(ctx, args, "limit", True)


@command("resource:reserve-clear", "remove an app's resource reservations", APP, PROC)
async def resource_reserve_clear(ctx: Context, args: argparse.Namespace) -> int:
    return await _resources(ctx, args, "reserve", True)


@command("resource:report", "show an app's resource limits and reservations", APP, FMT)
async def resource_report(ctx: Context, args: argparse.Namespace) -> int:
    data = await ctx.client().request("GET", f"/v1/apps/{app_of(args)}/resources")
    if ctx.format == "json":
        output.as_json(data["record"])
        return 0
    output.report(f"{args.app} resource information",
                  [(label, value) for label, value in data["report"]])
    return 0


# rebuild, rename, clone -------------------------------------------------------------------------

@command("ps:rebuild", "build the deployed revision again and deploy it", APP)
async def ps_rebuild(ctx: Context, args: argparse.Namespace) -> int:
    return await stream_out(ctx, "POST", f"/v1/apps/{app_of(args)}/rebuild")


@command("apps:rename", "rename an app (moves its settings, releases and repository)",
         arg("old"), arg("new"), SKIP)
async def apps_rename(ctx: Context, args: argparse.Namespace) -> int:
    old, new = validate_app_name(args.old), validate_app_name(args.new)
    return await stream_out(ctx, "POST", f"/v1/apps/{old}/rename",
                         {"name": new, "skip_deploy": args.skip_deploy})


@command("apps:clone", "copy an app (settings and repository) to a new app and deploy it",
         arg("old"), arg("new"), SKIP)
async def apps_clone(ctx: Context, args: argparse.Namespace) -> int:
    old, new = validate_app_name(args.old), validate_app_name(args.new)
    return await stream_out(ctx, "POST", f"/v1/apps/{old}/clone",
                         {"name": new, "skip_deploy": args.skip_deploy})


# ports -----------------------------------------------------------------------------------------

MAPS = arg("maps", nargs="+", metavar="SCHEME:HOST:CONTAINER", help="e.g. http:80:5000")


async def _ports(ctx: Context, args: argparse.Namespace, body: dict[str, Any]) -> int:
    return await stream_out(ctx, "POST", f"/v1/apps/{app_of(args)}/ports", body)


@command("ports:set", "set an app's port mappings", APP, MAPS)
async def ports_set(ctx: Context, args: argparse.Namespace) -> int:
    return await _ports(ctx, args, {"set": args.maps})


@command("ports:add", "add port mappings to an app", APP, MAPS)
async def ports_add(ctx: Context, args: argparse.Namespace) -> int:
    return await _ports(ctx, args, {"add": args.maps})


@command("ports:remove", "remove port mappings (or every mapping of a host port)", APP,
         arg("maps", nargs="+", metavar="MAPPING|HOST-PORT"))
async def ports_remove(ctx: Context, args: argparse.Namespace) -> int:
    return await _ports(ctx, args, {"remove": args.maps})


@command("ports:clear", "go back to the default port mapping", APP)
async def ports_clear(ctx: Context, args: argparse.Namespace) -> int:
    return await _ports(ctx, args, {"clear": True})


@command("ports:report", "show an app's port mappings", APP, FMT,
         arg("--ports-map", dest="flag", action="store_const", const="--ports-map",
             default=None, help="print only the mappings set"),
         arg("--ports-map-detected", dest="flag", action="store_const",
             const="--ports-map-detected", help="print only the mappings in effect"))
async def ports_report(ctx: Context, args: argparse.Namespace) -> int:
    data = await ctx.client().request("GET", f"/v1/apps/{app_of(args)}/ports")
    if ctx.format == "json":
        output.as_json(data)
        return 0
    items = [("--ports-map", "Ports map", " ".join(data["map"])),
             ("--ports-map-detected", "Ports map detected", " ".join(data["effective"]))]
    if not single_value(args.flag, items):
        output.report(f"{args.app} ports information", [(lb, v) for _, lb, v in items])
    return 0


@command("ports:list", "list an app's port mappings in effect", APP)
async def ports_list(ctx: Context, args: argparse.Namespace) -> int:
    data = await ctx.client().request("GET", f"/v1/apps/{app_of(args)}/ports")
    output.header(f"{args.app} port mappings")
    output.table([dict(zip(("scheme", "host port", "container port"), m.split(":"),
                           strict=True)) for m in data["effective"]],
                 ["scheme", "host port", "container port"])
    return 0


# enter ------------------------------------------------------------------------------------------

@command("enter", "run a shell (or CMD) in a running container of an app on this machine",
         APP, arg("instance", nargs="?", default="web", help="web.1, worker.2 or a type"),
         arg("cmd", nargs=argparse.REMAINDER, help="command (default /bin/sh)"))
async def enter(ctx: Context, args: argparse.Namespace) -> int:
    from shipmate.paas.model import PROCESS_TYPE
    from shipmate.spec.unitcontainer import default_container_name

    kind, dot, number = args.instance.partition(".")
    if not PROCESS_TYPE.fullmatch(kind) or (dot and not number.isdigit()):
        raise ValidationError(f"Invalid instance {args.instance[:64]!r}",
                              hint="name a process type (web) or an instance (web.1)")
    data = await ctx.client().request("GET", f"/v1/apps/{app_of(args)}/ps")
    proc = _running(data["processes"], args.app, args.instance)
    if proc["machine"] != ctx.config.machine_id:
        raise ValidationError(f"{proc['instance']} of {args.app} runs on {proc['machine']}",
                              hint="run `enter` on that machine (over SSH: `ssh -t "
                                   f"shipmate@THAT-HOST enter {args.app} {proc['instance']}`)")
    docker = shutil.which("docker")
    if docker is None:
        raise ValidationError("the docker command is not installed on this machine")
    sys.stdout.flush()
    # exec, not a child: the terminal (and its signals) belong to `docker exec` alone.
    os.execv(docker, exec_argv(default_container_name(proc["unit"]), args.cmd,  # noqa: S606
                               tty=sys.stdin.isatty() and sys.stdout.isatty(),
                               term=os.environ.get("TERM", "")))
    return 0  # not reached: exec replaces this process


def _running(processes: list[dict[str, Any]], app: str, wanted: str) -> dict[str, Any]:
    # The instance asked for (web.1), or the first running one of a type (web).
    active = [p for p in processes if p["state"].startswith("active")]
    for p in active:
        if p["instance"] == wanted or p["instance"].split(".")[0] == wanted:
            return p
    raise ValidationError(f"No running {wanted} container of {app}",
                          hint="running: " + (", ".join(sorted({p["instance"] for p in active}))
                                              or "none"))


def exec_argv(container: str, cmd: list[str], *, tty: bool, term: str) -> list[str]:
    """``docker exec`` of ``cmd`` (default ``/bin/sh``) in ``container``: with a terminal
    when there is one (its ``TERM`` passed in), on pipes otherwise. ``--`` ends docker's
    options (after the container's name docker reads none), so neither the name nor ``cmd``
    is ever taken for one."""
    flags = ["-it", "-e", "TERM"] if tty and term else ["-it"] if tty else ["-i"]
    return ["docker", "exec", *flags, "--", container, *(cmd or ["/bin/sh"])]


# prebuilt images --------------------------------------------------------------------------------

IMAGE = arg("image", help="image name (repository[:tag]) or ID")


@command("git:from-image", "deploy an image already on this machine's engine", APP, IMAGE)
async def git_from_image(ctx: Context, args: argparse.Namespace) -> int:
    return await stream_out(ctx, "POST", f"/v1/apps/{app_of(args)}/from-image",
                         {"image": args.image})


async def _stdin_chunks() -> AsyncIterator[bytes]:
    fd = sys.stdin.fileno()
    while chunk := await asyncio.to_thread(os.read, fd, 2**20):
        yield chunk


@command("git:load-image", "load a `docker save` tar from standard input and deploy IMAGE",
         APP, IMAGE)
async def git_load_image(ctx: Context, args: argparse.Namespace) -> int:
    app = app_of(args)
    if sys.stdin.isatty():
        raise ValidationError("git:load-image reads the image from standard input",
                              hint=f"docker save {args.image} | shipmate git:load-image "
                                   f"{app} {args.image}")
    exists = await ctx.client().request("GET", f"/v1/apps/{app}/exists")
    if not exists["exists"]:  # said before the upload, not after it
        raise ValidationError(f"App {app} does not exist", hint="create it with apps:create")
    async for line in ctx.client().stream("POST", f"/v1/apps/{app}/load-image",
                                          params={"image": args.image},
                                          data=_stdin_chunks()):
        print(line, flush=True)
    return 0
