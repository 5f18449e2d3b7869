"""Base images without a registry: ``shipmate/base:bookworm`` from debootstrap, then
``shipmate/node:18`` and ``shipmate/python:3.11`` built FROM it with Debian's packages.

Idempotent: every image carries a hash of its inputs (see :mod:`.images_recipes`); an image
whose label matches is left alone, so a second run on a warm machine makes no engine write.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Collection
from pathlib import Path

from shipmate.engine import images_recipes as rc
from shipmate.engine.base import Engine
from shipmate.errors import ShipmateError

Progress = Callable[[str], None]
_CHUNK = 1 << 20
_TAIL = 20


@dataclasses.dataclass(frozen=True)
class ImageResult:
    """What bootstrap did with one image."""

    ref: str
    id: str
    built: bool  # False: it was up to date
    seconds: float


def _quiet(_: str) -> None:
    pass


async def bootstrap(
    engine: Engine,
    *,
    mirror: str,
    suite: str = "bookworm",
    progress: Progress = _quiet,
    on_line: Progress | None = None,
    force: bool = False,
    apt_proxy: str | None = None,
    http_proxy: str | None = None,
    network_mode: str | None = "host",
    workdir: str | None = None,
    only: Collection[str] | None = None,
    services: bool = False,
) -> list[ImageResult]:
    """Build the base images that are missing or out of date (all with ``force``).

    ``progress`` gets one line per step; ``on_line`` gets debootstrap's and the builds' output.
    ``network_mode`` defaults to ``host`` because containers on the bridge cannot resolve the
    package mirror's name; with ``apt_proxy`` pointing at the package cache it can be None.
    ``only`` limits the run to these references (and their parents); the service images
    (postgres, redis) are built when named there or with ``services``.
    """
    rc.validate(suite, mirror)
    results: list[ImageResult] = []
    superseded: list[str] = []
    for recipe in rc.select(rc.recipes(suite, services=services or only is not None), only):
        started = time.monotonic()
        dockerfile = rc.dockerfile_text(recipe.dockerfile)
        parent_id = None
        if recipe.parent is not None:
            parent = await engine.image(recipe.parent)
            if parent is None:
                raise ShipmateError(f"{recipe.parent} is missing after bootstrap built it")
            parent_id = parent.id
        wanted = rc.inputs_hash(recipe, mirror=mirror, suite=suite, dockerfile=dockerfile,
                                parent_id=parent_id)
        current = await engine.image(recipe.ref)
        if current is not None and current.labels.get(rc.INPUTS_LABEL) == wanted and not force:
            progress(f"{recipe.ref} is up to date ({current.id[7:19]})")
            results.append(ImageResult(recipe.ref, current.id, False, time.monotonic() - started))
            continue
        if current is not None:
            superseded.append(current.id)
        progress(f"Bootstrapping {recipe.ref} ({recipe.about})")
        builder = _Builder(engine, recipe, wanted, on_line, network_mode,
                           apt_proxy=apt_proxy, http_proxy=http_proxy)
        if recipe.parent is None:
            image_id = await _build_base(builder, suite, mirror, progress, workdir)
        else:
            image_id = await builder.build(rootfs=None)
        elapsed = time.monotonic() - started
        progress(f"Built {recipe.ref} ({image_id[7:19]}) in {elapsed:.0f} s")
        results.append(ImageResult(recipe.ref, image_id, True, elapsed))
    await _remove_superseded(engine, superseded, {r.id for r in results})
    return results


async def _remove_superseded(engine: Engine, ids: list[str], keep: set[str]) -> None:
    """Drop the images a rebuild replaced (children first, so parents are free to go); one
    still used by a container stays."""
    for image_id in reversed(ids):
        if image_id not in keep:
            with contextlib.suppress(ShipmateError):
                await engine.remove_image(image_id)


@dataclasses.dataclass
class _Builder:
    """Runs one recipe's Dockerfile build in an empty context."""

    engine: Engine
    recipe: rc.Recipe
    inputs: str
    on_line: Progress | None
    network_mode: str | None
    apt_proxy: str | None = None
    http_proxy: str | None = None

    async def build(self, rootfs: str | None) -> str:
        context = await asyncio.to_thread(tempfile.mkdtemp, prefix="shipmate-build-")
        try:
            path = Path(context) / "Dockerfile"
            await asyncio.to_thread(path.write_text, rc.dockerfile_text(self.recipe.dockerfile))
            return await self.engine.build(
                context, self.recipe.ref,
                buildargs=rc.build_args(self.recipe, rootfs=rootfs, apt_proxy=self.apt_proxy,
                                        http_proxy=self.http_proxy),
                network_mode=self.network_mode,
                labels={rc.INPUTS_LABEL: self.inputs, rc.KIND_LABEL: self.recipe.ref},
                on_line=self.on_line,
            )
        finally:
            await asyncio.to_thread(shutil.rmtree, context, True)


async def _build_base(builder: _Builder, suite: str, mirror: str, progress: Progress,
                      workdir: str | None) -> str:
    """debootstrap into a temp dir, stream a tar of it into ``docker import`` (as the
    ``-rootfs`` tag), then build the base Dockerfile FROM it and drop the rootfs tag."""
    tmp = await asyncio.to_thread(tempfile.mkdtemp, prefix="shipmate-rootfs-", dir=workdir)
    root = os.path.join(tmp, "root")
    rootfs_tag = suite + rc.ROOTFS_TAG_SUFFIX
    try:
        await _debootstrap(suite, root, mirror, builder.on_line)
        await asyncio.to_thread(_trim, root)
        progress(f"Importing the root filesystem as {rc.BASE_REPOSITORY}:{rootfs_tag}")
        tar = _TarStream(root)
        await builder.engine.import_image(tar.chunks(), rc.BASE_REPOSITORY, rootfs_tag)
        await tar.check()
        return await builder.build(rootfs=f"{rc.BASE_REPOSITORY}:{rootfs_tag}")
    finally:
        # The rootfs tag is an intermediate; its layer stays as the base image's parent.
        with contextlib.suppress(ShipmateError):
            await builder.engine.remove_image(f"{rc.BASE_REPOSITORY}:{rootfs_tag}")
        await asyncio.to_thread(shutil.rmtree, tmp, True)


def _trim(root: str) -> None:
    """Drop what debootstrap leaves that no image needs: downloaded .debs, apt's package
    lists and caches (~80 MB; every build runs apt-get update anyway)."""
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in Path(root, sub).glob("*"):
            if entry.is_file() and entry.name != "lock":
                entry.unlink()
    for cache in Path(root, "var/cache/apt").glob("*.bin"):
        cache.unlink()


async def _run_logged(argv: list[str], on_line: Progress | None, what: str, hint: str) -> None:
    """Run ``argv``, passing its output lines on; on failure raise with the last lines."""
    if shutil.which(argv[0]) is None:
        raise ShipmateError(f"{argv[0]} is not installed", hint=f"apt-get install {argv[0]}")
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL)
    assert proc.stdout is not None
    try:
        async for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            tail.append(line)
            if on_line:
                on_line(line)
        code = await proc.wait()
    finally:
        if proc.returncode is None:  # cancelled (Ctrl-C): leave no debootstrap behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own group: wget, dpkg too
            await proc.wait()
    if code != 0:
        shown = "\n".join(tail)
        raise ShipmateError(f"{what} failed (exit status {code}):\n{shown}", hint=hint)


async def _debootstrap(suite: str, root: str, mirror: str, on_line: Progress | None) -> None:
    if os.geteuid() != 0:
        raise ShipmateError("debootstrap needs root", hint="run images:bootstrap as root")
    await _run_logged(
        rc.debootstrap_command(suite, root, mirror), on_line, "debootstrap",
        hint=f"check that {mirror} serves {suite} (set SHIPMATE_DEBIAN_MIRROR or --mirror)")


class _TarStream:
    """``tar -c`` of a directory as an async stream of chunks (never all in memory)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.proc: asyncio.subprocess.Process | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        self.proc = await asyncio.create_subprocess_exec(
            "tar", "--numeric-owner", "-C", self.root, "-c", ".",
            stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
        assert self.proc.stdout is not None
        try:
            while chunk := await self.proc.stdout.read(_CHUNK):
                yield chunk
        finally:
            if self.proc.returncode is None and not self.proc.stdout.at_eof():
                self.proc.kill()

    async def check(self) -> None:
        """Raise if tar failed (the import would then hold a truncated root filesystem)."""
        code = await self.proc.wait() if self.proc else -1
        if code != 0:
            raise ShipmateError(f"tar of the root filesystem failed (exit status {code})",
                                hint="see the messages above; rerun with --force")
