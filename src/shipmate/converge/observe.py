"""Read the state a plan is made from: containers and images from the engine, content hashes
of image sources from disk. Reads only: observing never changes the engine."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from shipmate.converge.plan import Observed, image_refs
from shipmate.engine.base import Engine, ImageInfo
from shipmate.errors import ValidationError
from shipmate.spec.manifest import ImageDecl, Manifest

_SKIP_DIRS = {".git", "__pycache__"}
_CHUNK = 1 << 20


async def observe(engine: Engine, manifest: Manifest) -> Observed:
    """Every container on the engine, the images ``manifest`` names, and its image sources'
    hashes (hashed in a thread: a build context can be large)."""
    sources = await asyncio.to_thread(source_hashes, manifest)
    containers, images = await asyncio.gather(
        engine.list(), _images(engine, image_refs(manifest, sources)))
    return Observed(tuple(containers), images, sources)


async def _images(engine: Engine, refs: list[str]) -> dict[str, ImageInfo | None]:
    found = await asyncio.gather(*(engine.image(ref) for ref in refs))
    return dict(zip(refs, found, strict=True))


def source_hashes(manifest: Manifest) -> dict[str, str]:
    """Content hash of each built or imported image's source."""
    out: dict[str, str] = {}
    for img in manifest.images:
        if img.source == "build":
            out[img.tag] = context_hash(img)
        elif img.source == "import":
            out[img.tag] = file_hash(img)
    return out


def context_hash(img: ImageDecl) -> str:
    """Hash of a build: every file of the context (path, mode, content), the Dockerfile name
    and the build args. Any edit means a rebuild; no edit means no build at all."""
    root = Path(img.path)
    if not root.is_dir():
        raise ValidationError(f"{img.where}: build context {img.path} is not a directory")
    if not (root / img.dockerfile).is_file():
        raise ValidationError(f"{img.where}: {img.dockerfile} not found in {img.path}")
    h = hashlib.sha256()
    h.update(repr((img.dockerfile, img.args, img.network)).encode())
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in sorted(filenames):
            path = Path(dirpath, name)
            h.update(f"\0{path.relative_to(root)}\0{path.lstat().st_mode:o}\0".encode())
            if path.is_file() and not path.is_symlink():
                _feed(h, path)
            elif path.is_symlink():
                h.update(os.readlink(path).encode())
    return h.hexdigest()


def file_hash(img: ImageDecl) -> str:
    """SHA-256 of an import tar."""
    path = Path(img.path)
    if not path.is_file():
        raise ValidationError(f"{img.where}: import file {img.path} not found")
    h = hashlib.sha256()
    _feed(h, path)
    return h.hexdigest()


def _feed(h: hashlib._Hash, path: Path) -> None:
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
