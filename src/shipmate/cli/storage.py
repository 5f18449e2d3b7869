"""Dokku's ``storage:*`` commands: persistent directories mounted into an app's containers."""

from __future__ import annotations

import argparse

from shipmate.cli import output
from shipmate.cli.common import APP, FMT, app_of, flag_args, single_value, stream_out
from shipmate.cli.registry import Context, arg, command

MOUNT = arg("mount", metavar="HOST_PATH:CONTAINER_PATH",
            help="a host directory (or a storage:ensure-directory NAME) and where it appears")


@command("storage:ensure-directory", "make a directory for an app's persistent storage",
         arg("name", help="directory name (made under STATE_DIR/storage)"),
         arg("--chown", default="herokuish",
             help="owner: herokuish (32767, the default), heroku (1000), paketo (2000), "
                  "root, false (leave it) or UID[:GID]"))
async def storage_ensure_directory(ctx: Context, args: argparse.Namespace) -> int:
    return await stream_out(ctx, "POST", "/v1/storage/directories",
                         {"name": args.name, "chown": args.chown})


@command("storage:mount", "mount a host directory into an app's containers (next deploy)",
         APP, MOUNT)
async def storage_mount(ctx: Context, args: argparse.Namespace) -> int:
    app = app_of(args)
    await ctx.client().request("POST", f"/v1/apps/{app}/storage",
                               json_body={"mount": args.mount, "remote": ctx.remote})
    output.step(f"Mounted {args.mount} for {app}; `ps:restart {app}` applies it now "
                "(or the next deploy)")
    return 0


@command("storage:unmount", "remove a mount from an app (next deploy)", APP, MOUNT)
async def storage_unmount(ctx: Context, args: argparse.Namespace) -> int:
    app = app_of(args)
    await ctx.client().request("POST", f"/v1/apps/{app}/storage/unmount",
                               json_body={"mount": args.mount, "remote": ctx.remote})
    output.step(f"Unmounted {args.mount} from {app}; `ps:restart {app}` applies it now")
    return 0


@command("storage:list", "list an app's mounts", APP, FMT)
async def storage_list(ctx: Context, args: argparse.Namespace) -> int:
    app = app_of(args)
    data = await ctx.client().request("GET", f"/v1/apps/{app}/storage")
    if ctx.format == "json":  # Dokku's shape
        output.as_json([{"host_path": m["host"], "container_path": m["container"],
                         "volume_options": ""} for m in data["mounts"]])
        return 0
    output.header(f"{app} volume bind-mounts:")
    for m in data["mounts"]:
        print(f"     {m['host']}:{m['container']}")
    return 0


_REPORT = [("--storage-build-mounts", "Storage build mounts", "build_mounts"),
           ("--storage-deploy-mounts", "Storage deploy mounts", "deploy_mounts"),
           ("--storage-run-mounts", "Storage run mounts", "run_mounts"),
           ("--storage-machine", "Storage machine", "machine")]


@command("storage:report", "show an app's storage", APP, FMT,
         *flag_args([f for f, _, _ in _REPORT]))
async def storage_report(ctx: Context, args: argparse.Namespace) -> int:
    app = app_of(args)
    report = (await ctx.client().request("GET", f"/v1/apps/{app}/storage"))["report"]
    if ctx.format == "json":
        output.as_json(report)
        return 0
    items = [(flag, label, report.get(key, "")) for flag, label, key in _REPORT]
    if not single_value(args.flag, items):
        output.report(f"{app} storage information", [(label, v) for _, label, v in items])
    return 0
