"""From a pushed tree to an image: unpack, detect the builder, build through the engine with
the package cache's settings as build arguments, and read what the deploy needs."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import os
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from shipmate.config import Config
from shipmate.engine.base import Engine
from shipmate.errors import ShipmateError, ValidationError
from shipmate.paas.builders import appjson
from shipmate.paas.builders.checks import CheckPlan, plan_checks
from shipmate.paas.builders.detect import NODE_MAJOR, BuildPlan, detect, processes
from shipmate.paas.model import parse_procfile
from shipmate.spec.labels import APP_LABEL

Emit = Callable[[str], None]
LABELS = {"dockerfile": "Dockerfile", "nodejs": "Node.js", "python": "Python",
          "static": "Static site", "procfile": "Procfile"}
GENERATED_DOCKERFILE = ".shipmate.Dockerfile"
MAX_SOURCE_BYTES = 512 * 2**20


class BuildError(ShipmateError):
    """A build went past one of its limits (time, image size)."""

    status = 422
    code = "build_failed"


@dataclasses.dataclass(frozen=True)
class BuildLimits:
    """Bounds of one build (settings ``build_timeout``, ``build_max_image_bytes``,
    ``build_max_output_bytes``)."""

    timeout: float = 1800.0
    max_image_bytes: int = 8 * 2**30
    max_output_bytes: int = 8 * 2**20

    @staticmethod
    def from_config(config: Config) -> BuildLimits:
        """The limits the settings give."""
        return BuildLimits(float(config.build_timeout), int(config.build_max_image_bytes),
                           int(config.build_max_output_bytes))


@dataclasses.dataclass(frozen=True)
class BuildResult:
    """What a build produced."""

    image: str
    builder: str
    processes: Mapping[str, str]
    release_command: str
    checks: CheckPlan
    app_json: appjson.AppJson = dataclasses.field(default_factory=appjson.AppJson)


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


def labelled(dockerfile: str, labels: Mapping[str, str]) -> str:
    """A generated Dockerfile with ``labels`` set right after its ``FROM`` line (pure). There
    they are cached with the steps before the code; given to the classic builder as build
    labels instead, they become a last ``LABEL`` step that misses the cache on every code
    change and costs a container and a commit. Values are app names and such (no quotes)."""
    first, _, rest = dockerfile.partition("\n")
    words = " ".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return f"{first}\nLABEL {words}\n{rest}" if labels else dockerfile


@dataclasses.dataclass(frozen=True)
class Prepared:
    """What the unpacked tree says: the build plan, the Procfile, the checks, app.json and the
    Dockerfile name to build with."""

    plan: BuildPlan
    procfile: Mapping[str, str]
    checks: CheckPlan
    app_json: appjson.AppJson
    dockerfile: str


def prepare(tar: bytes, root: Path, labels: Mapping[str, str]) -> Prepared:
    """Unpack and inspect the tree (blocking file work); a generated Dockerfile carries
    ``labels``."""
    unpack(tar, root)
    procfile = parse_procfile(_read_small(root, "Procfile") or "")
    texts = {n: t for n in ("app.json", "CHECKS") if (t := _read_small(root, n)) is not None}
    app_json = appjson.parse(texts["app.json"]) if "app.json" in texts else appjson.AppJson()
    plan = detect({p.name for p in root.iterdir()}, procfile)
    dockerfile = "Dockerfile"
    if plan.dockerfile is not None:
        (root / GENERATED_DOCKERFILE).write_text(labelled(plan.dockerfile, labels))
        dockerfile = GENERATED_DOCKERFILE
    return Prepared(plan, procfile, plan_checks(texts), app_json, dockerfile)


def notices(prepared: Prepared) -> list[str]:
    """The lines a build says about app.json: the fields it ignores (one line) and a Node.js
    version other than the one installed (one line)."""
    out = []
    ignored = prepared.app_json.ignored
    if ignored:
        out.append(f"-----> app.json: ignoring {', '.join(ignored)} (not used by Shipmate)")
    wanted = prepared.app_json.node_engine
    if prepared.plan.builder == "nodejs" and appjson.node_mismatch(wanted, NODE_MAJOR):
        out.append(f" !     app.json engines.node asks for {wanted}; building with Node.js "
                   f"{NODE_MAJOR} (shipmate/node:{NODE_MAJOR}), the version installed")
    return out


async def build(engine: Engine, app: str, rev: str, tar: bytes, emit: Emit, *,
                buildargs: Mapping[str, str], network: str,
                limits: BuildLimits | None = None) -> BuildResult:
    """Build the pushed tree of ``app`` at ``rev`` into an image, on Docker network
    ``network`` (the sandbox's, see :mod:`.sandbox`; ``host`` for none), within ``limits``."""
    bounds = limits or BuildLimits()
    # The image's labels: the app (images are served to other machines only with it). The
    # revision is in the image's tag, not in a label: a label that changes with every push
    # would be one more uncached step.
    labels = {APP_LABEL: app}
    with tempfile.TemporaryDirectory(prefix=f"shipmate-build-{app}-") as tmp:
        prepared = await asyncio.to_thread(prepare, tar, Path(tmp), labels)
        plan = prepared.plan
        emit(f"-----> {LABELS[plan.builder]} app detected")
        for line in notices(prepared):
            emit(line)
        emit(f"-----> Building {app} from {LABELS[plan.builder]}...")
        try:
            # Closing the engine's build stream (on the timeout) makes dockerd stop the build.
            async with asyncio.timeout(bounds.timeout):
                image = await engine.build(
                    tmp, f"shipmate/app-{app}:{rev[:12] or 'latest'}",
                    dockerfile=prepared.dockerfile,
                    buildargs=dict(buildargs), network_mode=network,
                    labels=labels if plan.dockerfile is None else None,
                    on_line=_capped(emit, bounds.max_output_bytes))
        except TimeoutError:
            raise BuildError(f"the build of {app} took longer than {bounds.timeout:g}s and "
                             "was stopped",
                             hint="make it faster, or raise SHIPMATE_BUILD_TIMEOUT") from None
    await _check_size(engine, app, image, bounds.max_image_bytes)
    return BuildResult(image, plan.builder, processes(plan, prepared.procfile),
                       prepared.procfile.get("release", ""), prepared.checks, prepared.app_json)


def _capped(emit: Emit, limit: int) -> Emit:
    """``emit`` for build output, leaving out what goes past ``limit`` bytes (once said)."""
    sent = 0

    def out(line: str) -> None:
        nonlocal sent
        sent += len(line) + 1
        if sent <= limit:
            emit(f"       {line}")
        elif sent - len(line) - 1 <= limit:
            emit(f" !     build output past {limit} bytes is left out "
                 "(SHIPMATE_BUILD_MAX_OUTPUT_BYTES)")

    return out


async def _check_size(engine: Engine, app: str, image: str, limit: int) -> None:
    info = await engine.image(image)
    if info is None or info.size <= limit:
        return
    with contextlib.suppress(ShipmateError):
        await engine.remove_image(image, force=True)
    raise BuildError(f"the image of {app} is {info.size / 2**20:.0f} MiB, more than the "
                     f"{limit / 2**20:.0f} MiB a build may produce",
                     hint="make the image smaller, or raise SHIPMATE_BUILD_MAX_IMAGE_BYTES")
