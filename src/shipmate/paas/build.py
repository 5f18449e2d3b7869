"""From a pushed tree to an image: unpack, detect the builder, build through the engine with
the package cache's settings as build arguments, and read what the deploy needs."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from shipmate.engine.base import Engine
from shipmate.errors import ValidationError
from shipmate.paas.builders.checks import CheckPlan, plan_checks
from shipmate.paas.builders.detect import BuildPlan, detect, processes
from shipmate.paas.model import parse_procfile

Emit = Callable[[str], None]
LABELS = {"dockerfile": "Dockerfile", "nodejs": "Node.js", "python": "Python",
          "static": "Static site", "procfile": "Procfile"}
GENERATED_DOCKERFILE = ".shipmate.Dockerfile"
MAX_SOURCE_BYTES = 512 * 2**20


@dataclasses.dataclass(frozen=True)
class BuildResult:
    """What a build produced."""

    image: str
    builder: str
    processes: Mapping[str, str]
    release_command: str
    checks: CheckPlan


def unpack(tar: bytes, dest: Path) -> None:
    """Extract a ``git archive`` tar safely (no absolute paths, links out, or devices)."""
    if len(tar) > MAX_SOURCE_BYTES:
        raise ValidationError("pushed tree is larger than 512 MB")
    try:
        with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
            if hasattr(tarfile, "data_filter"):
                tf.extractall(dest, filter="data")
            else:  # Python < 3.11.4 (Debian bookworm's python3, in cluster nodes)
                tf.extractall(dest, members=_safe_members(tf))  # noqa: S202 (checked)
    except (tarfile.TarError, OSError) as exc:
        raise ValidationError(f"cannot unpack the pushed tree: {exc}") from exc


def _safe_members(tf: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """What the "data" filter allows, for Pythons without it: regular files, directories and
    links that stay inside the tree; anything else is refused."""
    out = []
    for m in tf.getmembers():
        name = Path(m.name)
        link = Path(m.linkname) if m.issym() else None
        if name.is_absolute() or ".." in name.parts or not (m.isfile() or m.isdir()
                                                             or m.issym()):
            raise tarfile.TarError(f"refusing {m.name!r}")
        if link is not None and (link.is_absolute() or os.path.normpath(
                name.parent / link).split(os.sep)[0] == ".."):
            raise tarfile.TarError(f"refusing link {m.name!r} -> {m.linkname!r}")
        m.mode &= 0o755
        out.append(m)
    return out


def _read_small(root: Path, name: str) -> str | None:
    path = root / name
    if path.is_file() and path.stat().st_size < 1_000_000:
        return path.read_text(errors="replace")
    return None


def prepare(tar: bytes, root: Path) -> tuple[BuildPlan, dict[str, str], CheckPlan, str]:
    """Unpack and inspect the tree (blocking file work): the build plan, the Procfile, the
    checks and the Dockerfile name to build with."""
    unpack(tar, root)
    procfile = parse_procfile(_read_small(root, "Procfile") or "")
    texts = {n: t for n in ("app.json", "CHECKS") if (t := _read_small(root, n)) is not None}
    plan = detect({p.name for p in root.iterdir()}, procfile)
    dockerfile = "Dockerfile"
    if plan.dockerfile is not None:
        (root / GENERATED_DOCKERFILE).write_text(plan.dockerfile)
        dockerfile = GENERATED_DOCKERFILE
    return plan, procfile, plan_checks(texts), dockerfile


async def build(engine: Engine, app: str, rev: str, tar: bytes, emit: Emit, *,
                buildargs: Mapping[str, str]) -> BuildResult:
    """Build the pushed tree of ``app`` at ``rev`` into an image."""
    with tempfile.TemporaryDirectory(prefix=f"shipmate-build-{app}-") as tmp:
        plan, procfile, checks, dockerfile = await asyncio.to_thread(prepare, tar, Path(tmp))
        emit(f"-----> {LABELS[plan.builder]} app detected")
        emit(f"-----> Building {app} from {LABELS[plan.builder]}...")
        image = await engine.build(
            tmp, f"shipmate/app-{app}:{rev[:12] or 'latest'}", dockerfile=dockerfile,
            buildargs=dict(buildargs), network_mode="host",
            labels={"shipmate.app": app, "shipmate.git-rev": rev},
            on_line=lambda line: emit(f"       {line}"))
    return BuildResult(image, plan.builder, processes(plan, procfile),
                       procfile.get("release", ""), checks)
