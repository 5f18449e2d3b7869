"""``images:bootstrap`` and ``images:list``: base images, built locally without a registry.

These talk to the Docker engine directly (``SHIPMATE_DOCKER_HOST``); no daemon is needed.
"""

from __future__ import annotations

import argparse
import time

from shipmate.cli import output
from shipmate.cli.registry import Context, arg, command

# docker-py and the engine adapter are imported inside the commands: every CLI invocation
# imports this module, and only these two commands need them.


@command(
    "images:bootstrap",
    "build shipmate/base:bookworm (debootstrap), shipmate/node:18 and shipmate/python:3.11",
    arg("--force", action="store_true", help="rebuild even when up to date"),
    arg("--mirror", help="Debian mirror (default: SHIPMATE_DEBIAN_MIRROR)"),
    arg("--suite", default="bookworm", help="Debian suite of the base image"),
    arg("--apt-proxy", help="apt proxy for the builds, e.g. http://172.17.0.1:3142"),
    arg("--verbose", "-v", action="store_true", help="show debootstrap and build output"),
    arg("--services", action="store_true",
        help="also build shipmate/postgres:15 and shipmate/redis:7 (else built on first use)"),
)
async def images_bootstrap(ctx: Context, args: argparse.Namespace) -> int:
    """Bootstrap the base images (idempotent)."""
    from shipmate.engine.docker import DockerEngine
    from shipmate.engine.images import bootstrap

    mirror = args.mirror or ctx.config.debian_mirror
    json_out = ctx.format == "json"
    step = (lambda _: None) if json_out else output.step
    lines = output.detail if args.verbose and not json_out else None
    engine = DockerEngine(ctx.config.docker_host)
    started = time.monotonic()
    try:
        results = await bootstrap(engine, mirror=mirror, suite=args.suite, progress=step,
                                  on_line=lines, force=args.force, apt_proxy=args.apt_proxy,
                                  services=args.services)
    finally:
        await engine.close()
    if json_out:
        output.as_json([{"image": r.ref, "id": r.id, "built": r.built,
                         "seconds": round(r.seconds, 2)} for r in results])
    else:
        built = sum(r.built for r in results)
        output.step(f"{built} built, {len(results) - built} up to date, "
                    f"in {time.monotonic() - started:.1f} s")
    return 0


@command("images:list", "list Shipmate's base images")
async def images_list(ctx: Context, args: argparse.Namespace) -> int:
    """Base images present in the engine, with the recipe each should match."""
    from shipmate.engine import images_recipes
    from shipmate.engine.docker import DockerEngine

    engine = DockerEngine(ctx.config.docker_host)
    try:
        present = await engine.images({images_recipes.KIND_LABEL: None})
    finally:
        await engine.close()
    rows = []
    for info in present:
        kind = info.labels.get(images_recipes.KIND_LABEL)
        if not kind or not info.tags:  # untagged: an older build, superseded
            continue
        rows.append({"image": kind, "id": info.id[7:19], "tags": ",".join(info.tags),
                     "inputs": info.labels.get(images_recipes.INPUTS_LABEL, "")[:12]})
    rows.sort(key=lambda r: r["image"])
    if ctx.format == "json":
        output.as_json(rows)
    elif not rows:
        output.step("no base images yet: run shipmate images:bootstrap")
    else:
        output.table(rows, ["image", "id", "tags", "inputs"])
    return 0
