"""Carry a plan out through an :class:`~shipmate.engine.base.Engine`. The I/O of converge.

A plan with nothing to change makes no engine write at all: :func:`apply_manifest` observes
(reads only), plans, and returns. Replacements are health-gated (:mod:`.replace`). Images are
built first; if one was rebuilt, the containers are planned again, so a container is replaced
only when its image's ID really changed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from shipmate.clock import Clock, SystemClock
from shipmate.converge.diff import APPLIED_LABEL, CONTAINER_LABEL, IMAGE_ID_LABEL, applied_label
from shipmate.converge.observe import observe
from shipmate.converge.plan import SOURCE_LABEL, Action, Observed, Plan, import_marker, make_plan
from shipmate.converge.replace import Outcome, Replacer, Target
from shipmate.engine.base import Engine
from shipmate.errors import ConflictError, ShipmateError
from shipmate.spec.container import SPEC_HASH_LABEL, spec_hash
from shipmate.spec.manifest import MANIFEST_LABEL, ContainerDecl, Manifest

Report = Callable[[str], None]


@dataclasses.dataclass
class ApplyResult:
    """What an apply did: the plan it carried out and each action's outcome."""

    plan: Plan
    outcomes: list[Outcome] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every action succeeded."""
        return all(o.ok for o in self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        """The actions that failed."""
        return [o for o in self.outcomes if not o.ok]


async def plan_manifest(engine: Engine, manifest: Manifest, *, prune: bool = False) -> Plan:
    """Observe the engine and plan ``manifest`` against it (reads only)."""
    return make_plan(manifest, await observe(engine, manifest), prune=prune)


async def apply_manifest(
    engine: Engine,
    manifest: Manifest,
    *,
    prune: bool = False,
    saved: Plan | None = None,
    clock: Clock | None = None,
    report: Report | None = None,
    poll: float = 0.5,
) -> ApplyResult:
    """Converge the engine to ``manifest``. With ``saved``, refuse unless the manifest and
    the observed state are what they were when that plan was made."""
    observed = await observe(engine, manifest)
    plan = make_plan(manifest, observed, prune=saved.prune if saved else prune)
    if saved is not None:
        _check_saved(saved, plan)
    result = ApplyResult(plan)
    if not plan.changes_anything:
        return result
    run = _Run(engine, manifest, clock or SystemClock(), report or (lambda _m: None), poll)
    images = [a for a in plan.actions if a.kind in ("build", "import")]
    for action in images:
        result.outcomes.append(await run.image(action, observed.sources[action.name]))
    if images:
        if not result.ok:
            return result
        observed = await observe(engine, manifest)
        plan = make_plan(manifest, observed, prune=plan.prune)
        result.plan = plan
    await run.containers(plan, observed, result)
    return result


def _check_saved(saved: Plan, current: Plan) -> None:
    if saved.manifest != current.manifest or saved.desired != current.desired:
        raise ConflictError(
            f"the manifest {saved.path} (or a file it names) changed since the plan was saved",
            hint="make a new plan: shipmate plan FILE -o PLAN.json")
    if saved.fingerprint != current.fingerprint:
        raise ConflictError(
            "the Docker host changed since the plan was saved; nothing was applied",
            hint="review a new plan: shipmate plan FILE -o PLAN.json")


class _Run:
    """One apply's I/O: images, deletes, then containers in dependency order."""

    def __init__(self, engine: Engine, manifest: Manifest, clock: Clock, report: Report,
                 poll: float) -> None:
        self.engine = engine
        self.manifest = manifest
        self.report = report
        self.replacer = Replacer(engine, clock, report, poll)

    async def image(self, action: Action, digest: str) -> Outcome:
        decl = next(i for i in self.manifest.images if i.tag == action.name)
        self.report(f"{action.kind} image {decl.tag} ({action.reason})")
        try:
            if decl.source == "build":
                await self.engine.build(
                    decl.path, decl.tag, dockerfile=decl.dockerfile, buildargs=dict(decl.args),
                    network_mode=decl.network, labels={SOURCE_LABEL: digest})
            else:
                await self.engine.import_image(_read_chunks(Path(decl.path)), *_split(decl.tag))
                await self.engine.tag_image(decl.tag, *_split(import_marker(decl.tag, digest)))
        except ShipmateError as exc:
            return Outcome(action, False, f"image {decl.tag}: {exc.message}")
        return Outcome(action, True, f"image {decl.tag} ready")

    async def containers(self, plan: Plan, observed: Observed, result: ApplyResult) -> None:
        failed: set[str] = set()
        for action in plan.actions:
            if action.kind == "noop" or action.kind in ("build", "import"):
                continue
            blocked = [d for d in action.depends_on if d in failed]
            if blocked:
                failed.add(action.name)
                result.outcomes.append(Outcome(action, False, f"{action.name}: not changed, "
                                               f"{', '.join(blocked)} failed"))
                continue
            outcome = await self._container(action, observed, plan)
            result.outcomes.append(outcome)
            if not outcome.ok:
                failed.add(action.name)

    async def _container(self, action: Action, observed: Observed, plan: Plan) -> Outcome:
        try:
            if action.kind == "delete":
                self.report(f"delete {action.name} ({action.reason})")
                await self.engine.stop(action.container_id)
                await self.engine.remove(action.container_id, force=True)
                return Outcome(action, True, f"{action.name} deleted")
            decl = self.manifest.container(action.name)
            labels = self._labels(decl, observed)
            if action.kind == "create":
                return await self._create(action, decl, labels, plan)
            if action.kind == "update":
                return await self.replacer.update(action, target(decl), labels)
            return await self.replacer.replace(action, target(decl), labels)
        except ShipmateError as exc:
            return Outcome(action, False, f"{action.name}: {exc.message}")

    async def _create(self, action: Action, decl: ContainerDecl, labels: dict[str, str],
                      plan: Plan) -> Outcome:
        # Dependents start only once this one is up (depends_on means "healthy first").
        gated = any(decl.name in a.depends_on for a in plan.actions)
        return await self.replacer.create(action, target(decl), labels, gated=gated)

    def _labels(self, decl: ContainerDecl, observed: Observed) -> dict[str, str]:
        image = observed.images.get(decl.spec.image)
        return {
            MANIFEST_LABEL: self.manifest.name,
            CONTAINER_LABEL: decl.name,
            APPLIED_LABEL: applied_label(decl.spec),
            SPEC_HASH_LABEL: spec_hash(decl.spec),
            IMAGE_ID_LABEL: image.id if image else "",
        }


def target(decl: ContainerDecl) -> Target:
    """What the replacer converges for a declared container."""
    return Target(decl.spec, running_for=decl.running_for, wait=decl.wait)


def _split(ref: str) -> tuple[str, str]:
    """``repo:tag`` -> (repo, tag), ``latest`` when no tag is given."""
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = ref.rsplit(":", 1)
        return repo, tag
    return ref, "latest"


async def _read_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, 1 << 20):
            yield chunk
