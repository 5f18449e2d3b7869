"""The node image (built FROM the local base image, tagged by a hash of its inputs, so an
unchanged tree reuses it) and getting images into the nodes without a registry (save/load)."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

import shipmate
from shipmate.cluster import docker
from shipmate.cluster import spec as sp
from shipmate.engine.base import Engine
from shipmate.errors import ClusterError

Progress = Callable[[str], None]
_SKIP_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}


def _quiet(_: str) -> None:
    pass


@dataclasses.dataclass(frozen=True)
class NodeImage:
    """The node image to run: its reference, whether it was built now, and how long it took."""

    ref: str
    built: bool
    seconds: float


def source_root() -> Path:
    """The checkout Shipmate runs from (the node image installs this tree)."""
    root = Path(shipmate.__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "src" / "shipmate").is_dir():
        raise ClusterError(f"no Shipmate source tree at {root}",
                           hint="run `shipmate cluster up` from a checkout (pip install -e .)")
    return root


def entrypoint_text() -> str:
    """The node's entrypoint script, shipped as package data."""
    return resources.files("shipmate.cluster").joinpath("node-init.sh").read_text()


def _source_files(root: Path) -> list[Path]:
    """Files of the package tree, relative to ``root``, that go into the image."""
    out = []
    for path in sorted((root / "src" / "shipmate").rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and not _SKIP_DIRS & set(rel.parts) and path.suffix != ".pyc":
            out.append(rel)
    return out


def _inputs(root: Path, base_id: str) -> tuple[dict[str, bytes], list[Path]]:
    files = [Path("pyproject.toml"), *([Path("README.md")] if (root / "README.md").exists()
                                       else []), *_source_files(root)]
    lock = root / "requirements.lock"
    parts = {
        "Dockerfile": sp.dockerfile_text().encode(),
        "node-init.sh": entrypoint_text().encode(),
        "shipmate.sh": sp.launcher_text().encode(),
        "base-id": base_id.encode(),
        "requirements.txt": sp.runtime_requirements(
            lock.read_text() if lock.exists() else "").encode(),
    }
    for rel in files:
        parts["src/" + rel.as_posix()] = (root / rel).read_bytes()
    return parts, files


def _write_context(root: Path, parts: dict[str, bytes], files: list[Path],
                   wheels: Path) -> str:
    context = Path(tempfile.mkdtemp(prefix="shipmate-node-build-"))
    for name in ("Dockerfile", "node-init.sh", "shipmate.sh", "requirements.txt"):
        (context / name).write_bytes(parts[name])
    shutil.copytree(wheels, context / "wheels")
    for rel in files:
        dest = context / "src" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, dest)
    return str(context)


async def wheelhouse(requirements: bytes, cache_dir: Path, progress: Progress) -> Path:
    """Wheels of the runtime requirements, downloaded by the host's pip (which has the host's
    index, proxy and certificate settings) into ``cache_dir/<hash>`` once."""
    target = cache_dir / sp.inputs_hash({"requirements": requirements})[:16]
    if (target / ".complete").exists():
        return target
    progress("Downloading Shipmate's dependencies (wheels for the node image)")
    partial = target.with_name(target.name + ".partial")
    await asyncio.to_thread(shutil.rmtree, partial, True)
    partial.mkdir(parents=True)
    (partial / "requirements.txt").write_bytes(requirements)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--only-binary=:all:", "-d", str(partial), "-r", str(partial / "requirements.txt"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise ClusterError("pip could not download Shipmate's dependencies: "
                           + out.decode(errors="replace").strip()[-1500:],
                           hint="check the host's PyPI access (or PIP_INDEX_URL)")
    (partial / ".complete").touch()
    await asyncio.to_thread(shutil.rmtree, target, True)
    partial.rename(target)
    return target


async def ensure_node_image(engine: Engine, *, cache_dir: Path, progress: Progress = _quiet,
                            on_line: Progress | None = None, force: bool = False,
                            apt_proxy: str = "") -> NodeImage:
    """Build ``shipmate/node-machine:<hash>`` unless an image with that tag exists already.
    ``cache_dir`` keeps the wheelhouse between builds."""
    started = time.monotonic()
    base = await engine.image(sp.BASE_IMAGE)
    if base is None:
        raise ClusterError(f"{sp.BASE_IMAGE} is missing",
                           hint="build it first: shipmate images:bootstrap")
    root = source_root()
    parts, files = await asyncio.to_thread(_inputs, root, base.id)
    ref = sp.image_ref(sp.inputs_hash(parts))
    if not force and await engine.image(ref) is not None:
        progress(f"Node image {ref} is up to date")
        return NodeImage(ref, False, time.monotonic() - started)
    progress(f"Building node image {ref} (Debian's dockerd, nginx, etcd + Shipmate)")
    wheels = await wheelhouse(parts["requirements.txt"], cache_dir, progress)
    context = await asyncio.to_thread(_write_context, root, parts, files, wheels)
    try:
        # host network: apt reaches the Debian mirror by the host's name resolution
        await engine.build(context, ref, network_mode="host", on_line=on_line,
                           buildargs={"APT_PROXY": apt_proxy}, labels={sp.LABEL_IMAGE: ref})
    finally:
        await asyncio.to_thread(shutil.rmtree, context, True)
    await _remove_other_tags(ref)
    elapsed = time.monotonic() - started
    progress(f"Built {ref} in {elapsed:.0f} s")
    return NodeImage(ref, True, elapsed)


async def _remove_other_tags(keep: str) -> None:
    """Drop older node images (one still used by a container stays: rmi refuses it)."""
    _, out = await docker.run(["images", sp.IMAGE_REPOSITORY, "--format",
                               "{{.Repository}}:{{.Tag}}"], check=False)
    for ref in out.split():
        if ref != keep and ref.startswith(sp.IMAGE_REPOSITORY + ":"):
            await docker.run(["rmi", ref], check=False)


async def image_id(ref: str, container: str | None = None) -> str | None:
    """The ID of ``ref`` on the host, or inside the node ``container``; None when missing."""
    inner = ["exec", container, "docker"] if container else []
    code, out = await docker.run([*inner, "image", "inspect", "--format", "{{.Id}}", ref],
                                 check=False)
    return out.strip() if code == 0 and out.strip().startswith("sha256:") else None


async def host_images(wanted: Sequence[str]) -> dict[str, str]:
    """Those of ``wanted`` the host has, with their IDs."""
    ids = await asyncio.gather(*(image_id(ref) for ref in wanted))
    return {ref: i for ref, i in zip(wanted, ids, strict=True) if i}


async def load_into(container: str, images: dict[str, str]) -> list[str]:
    """``docker save`` the images the node lacks (or has at another ID) from the host and
    ``docker load`` them inside it, in one stream. Returns the references loaded."""
    inner = await asyncio.gather(*(image_id(ref, container) for ref in images))
    missing = [ref for (ref, want), have in zip(images.items(), inner, strict=True)
               if have != want]
    if missing:
        await docker.pipe(["save", *missing], ["exec", "-i", container, "docker", "load"])
    return missing
