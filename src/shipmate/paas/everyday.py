"""Dokku's everyday app operations beyond a push: ``ps:rebuild``, ``apps:rename``,
``apps:clone``, ``git:from-image`` and ``git:load-image``. Each one ends in the same
health-gated deploy a push makes (:meth:`Deployer.deploy
<shipmate.paas.deploy.Deployer.deploy>`), so a failure leaves the running release serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from shipmate.errors import ConflictError, ShipmateError, ValidationError
from shipmate.paas.acl import acl_key, rename_ops
from shipmate.paas.builders import appjson
from shipmate.paas.builders.checks import CheckPlan, plan_checks
from shipmate.paas.gitserver import repo_path
from shipmate.paas.model import Release, parse_procfile
from shipmate.paas.state import APPS, app_key
from shipmate.router import keys as route_keys
from shipmate.spec.container import make_spec
from shipmate.spec.names import validate_app_name
from shipmate.store.base import Op

if TYPE_CHECKING:
    from shipmate.paas.service import Paas

Emit = Callable[[str], None]
# Records a clone copies (a rename moves every record of the app).
CLONED = ("config", "formation", "checks", "resources", "ports")
# What a record move leaves behind: the app's own identity and a deploy in progress.
_NOT_MOVED = ("meta", "deploy-lock")
_MAX_IMAGE_FILE = 1_000_000
_SPLIT = "--shipmate-app-json--"


def archive_repo(repo: Path, rev: str, max_bytes: int) -> bytes:
    """The tree of ``rev`` in the bare repository ``repo`` as a tar (``git archive``)."""
    if not rev or not all(c in "0123456789abcdef" for c in rev):
        raise ValidationError(f"cannot rebuild: {rev!r} is not a pushed revision")
    proc = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", rev],
                          capture_output=True, timeout=300)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise ValidationError(f"cannot read revision {rev[:7]}: {err[-1] if err else 'git'}",
                              hint="push the app again")
    if len(proc.stdout) > max_bytes:
        raise ValidationError("the tree is larger than push_max_bytes")
    return proc.stdout


async def rebuild(paas: Paas, app: str, emit: Emit) -> None:
    """``ps:rebuild``: build the deployed revision again and deploy it (an app deployed from
    an image deploys that image again)."""
    current = await paas.state.current(app)
    if current is None:
        emit("-----> App has not been deployed yet; nothing to rebuild")
        return
    if not current.git_rev:
        await from_image(paas, app, current.image, emit)
        return
    repo = repo_path(paas.config.state_dir, app)
    tar = await asyncio.to_thread(archive_repo, repo, current.git_rev,
                                  paas.config.push_max_bytes)
    await paas.push(app, current.git_rev, tar, emit)


# rename and clone --------------------------------------------------------------------------

async def _copy_records(paas: Paas, old: str, new: str, parts: tuple[str, ...] | None) -> None:
    """Copy ``old``'s records (those named in ``parts``; all but its identity when None)
    under ``new``."""
    prefix = f"{APPS}{old}/"
    kvs, _ = await paas.store.range(prefix)
    ops = []
    for kv in kvs:
        part = kv.key[len(prefix):]
        top = part.split("/")[0]
        if top in _NOT_MOVED or (parts is not None and top not in parts):
            continue
        ops.append(Op.put(app_key(new, part), kv.value))
    if ops:
        await paas.store.txn([], ops)


async def rename(paas: Paas, old: str, new: str, emit: Emit, *, deploy: bool = True) -> None:
    """``apps:rename OLD NEW``: the app's records, releases, custom domains and repository
    move to ``NEW``; its current release is deployed as ``NEW`` and ``OLD``'s instances are
    removed."""
    validate_app_name(new)
    await paas.state.get_app(old)
    if old == new:
        raise ValidationError("the new name is the same as the old one")
    await paas.running.cancel(old, "apps:rename")
    async with paas.deployer.lock(old):
        await paas.state.create_app(new)
        emit(f"-----> Renaming {old} to {new}")
        await _copy_records(paas, old, new, None)
        granted = await paas.store.get(acl_key(old))  # the grants follow the app
        if granted is not None:
            await paas.store.txn([], rename_ops(granted.value, new))
        domains, port = await paas.state.domains(old)
        await paas.store.delete(route_keys.domains_key(old))
        if domains or port:
            await paas.state.set_domains(new, domains, port)
        old_repo, new_repo = (repo_path(paas.config.state_dir, a) for a in (old, new))
        if old_repo.exists():
            await asyncio.to_thread(old_repo.rename, new_repo)
        removed = await paas.deployer.destroy_all(old)
        emit(f"-----> Removed {len(removed)} instance(s) of {old}")
        await paas.state.destroy_app(old)
    if deploy:
        await paas.restart(new, emit)


async def clone(paas: Paas, old: str, new: str, emit: Emit, *, deploy: bool = True) -> None:
    """``apps:clone OLD NEW``: a new app with ``OLD``'s config, formation, checks, resources,
    ports and repository (not its custom domains), running ``OLD``'s current release as its
    first."""
    validate_app_name(new)
    await paas.state.get_app(old)
    current = await paas.state.current(old)
    await paas.state.create_app(new)
    emit(f"-----> Cloning {old} to {new}")
    await _copy_records(paas, old, new, CLONED)
    old_repo = repo_path(paas.config.state_dir, old)
    if old_repo.exists():
        await asyncio.to_thread(shutil.copytree, old_repo, repo_path(paas.config.state_dir, new))
    if not deploy or current is None:
        return
    config = await paas.state.config(new)
    release = await paas.deployer.deploy(new, lambda v: Release(
        v, current.image, config, {}, current.processes, current.git_rev, time.time(),
        f"Clone of {old} {current.label}", dict(current.checks), cron=current.cron), emit)
    await paas._deployed(new, release, emit)


# prebuilt images ----------------------------------------------------------------------------

async def _image_files(paas: Paas, app: str, image: str) -> tuple[str, str]:
    """The Procfile and app.json in the image's working directory ('' when absent or the
    image has no shell), read by a short-lived container."""
    engine = paas.require_engine()
    script = (f"cat Procfile 2>/dev/null | head -c {_MAX_IMAGE_FILE}; echo; echo {_SPLIT}; "
              f"cat app.json 2>/dev/null | head -c {_MAX_IMAGE_FILE}")
    spec = make_spec(f"{app}-inspect-{secrets.token_hex(3)}", image,
                     entrypoint=["/bin/sh", "-c", script], command=[],
                     labels={"shipmate.one-off": app})
    lines: list[str] = []
    try:
        cid = await engine.create(spec)
    except ShipmateError:
        return "", ""
    try:
        await engine.start(cid)
        if await engine.wait(cid) == 0:
            lines = [line async for line in engine.logs(cid)]
    except ShipmateError:
        lines = []
    finally:
        with contextlib.suppress(ShipmateError):
            await engine.remove(cid, force=True)
    text = "\n".join(lines)
    procfile, _, app_json = text.partition(_SPLIT)
    return procfile.strip(), app_json.strip()


async def from_image(paas: Paas, app: str, image: str, emit: Emit) -> None:
    """``git:from-image APP IMAGE``: deploy an image already on this machine's engine as a
    new release (its Procfile and app.json, when the image has them, are read as a push
    reads them)."""
    a = await paas.state.get_app(app)
    if a.locked:
        raise ConflictError(f"Deploy lock exists for {app}", hint=f"apps:unlock {app}")
    engine = paas.require_engine()
    info = await engine.image(image)
    if info is None:
        raise ValidationError(f"No such image on this machine: {image}",
                              hint="load it first (docker load, or git:load-image)")
    emit(f"-----> Deploying image {image} ({info.id.removeprefix('sha256:')[:12]}) to {app}")
    with contextlib.suppress(ShipmateError):  # a tag of our own, so a `docker rmi` of the
        await engine.tag_image(info.id, f"shipmate/app-{app}",  # user's tag keeps it
                               "image-" + info.id.removeprefix("sha256:")[:12])
    procfile_text, app_json_text = await _image_files(paas, app, info.id)
    procfile = parse_procfile(procfile_text)
    parsed = appjson.parse(app_json_text) if app_json_text else appjson.AppJson()
    if parsed.ignored:
        emit(f"-----> app.json: ignoring {', '.join(parsed.ignored)} (not used by Shipmate)")
    checks: CheckPlan = plan_checks({"app.json": app_json_text} if app_json_text else {})
    processes = {k: v for k, v in procfile.items() if k != "release"} or {"web": ""}
    config = await paas.state.config(app)
    await paas._ensure_formation(app, processes, parsed.formation)
    release = await paas.deployer.deploy(app, lambda v: Release(
        v, info.id, config, {}, processes, "", time.time(), f"Deploy image {image}",
        checks.to_json(), cron=tuple(e.to_json() for e in parsed.cron)), emit,
        release_command=procfile.get("release", ""),
        scripts={"predeploy": parsed.predeploy, "postdeploy": parsed.postdeploy})
    await paas._deployed(app, release, emit)


async def load_image(paas: Paas, app: str, image: str, chunks: AsyncIterator[bytes],
                     emit: Emit) -> None:
    """``git:load-image APP IMAGE < image.tar``: load a ``docker save`` stream into the
    engine, then deploy ``IMAGE`` from it as :func:`from_image` does."""
    await paas.state.get_app(app)
    emit(f"-----> Loading image {image}")
    loaded = await paas.require_engine().load_image(chunks)
    emit(f"       loaded: {', '.join(loaded) or 'nothing'}")
    if not loaded:
        raise ValidationError("the stream held no image", hint="send `docker save IMAGE`")
    names = set(loaded) | {n if ":" in n.rpartition("/")[2] else f"{n}:latest" for n in loaded}
    wanted = image if ":" in image.rpartition("/")[2] else f"{image}:latest"
    if image not in names and wanted not in names:
        raise ValidationError(f"{image} is not in the stream (it holds {', '.join(loaded)})",
                              hint="name one of the images the tar holds")
    await from_image(paas, app, image, emit)

