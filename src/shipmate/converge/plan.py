"""Manifest + observed state -> an ordered plan. Pure: data in, actions out.

Order: images first (built or imported only when their source changed), then leftovers and
pruned containers are deleted (freeing names and ports), then declared containers in
``depends_on`` order (dependencies first). A saved plan carries a fingerprint of the observed
state and a hash of the desired state; :mod:`shipmate.converge.apply` refuses it when either
changed since.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from shipmate.converge.diff import CONTAINER_LABEL, FieldChange, diff
from shipmate.engine.base import ContainerInfo, ImageInfo
from shipmate.errors import ConflictError, ValidationError
from shipmate.spec.container import ContainerSpec, spec_hash
from shipmate.spec.manifest import MANIFEST_LABEL, ContainerDecl, ImageDecl, Manifest
from shipmate.spec.manifest_checks import ports_clash

SOURCE_LABEL = "shipmate.source-hash"
ActionKind = Literal["build", "import", "create", "update", "replace", "delete", "noop"]
CHANGING: frozenset[str] = frozenset({"build", "import", "create", "update", "replace", "delete"})


@dataclasses.dataclass(frozen=True)
class Action:
    """One step. ``name`` is an image tag (build, import) or a container name."""

    kind: ActionKind
    name: str
    reason: str = ""
    changes: tuple[FieldChange, ...] = ()
    container_id: str = ""  # the existing container (update, replace, delete)
    strategy: str = ""  # replace: start-first or stop-first (as it will actually run)
    depends_on: tuple[str, ...] = ()
    spec_hash: str = ""  # desired spec's hash (containers)
    pending_image: bool = False  # decided again once the image is rebuilt

    @property
    def changes_anything(self) -> bool:
        """True unless a no-op."""
        return self.kind in CHANGING

    def to_json(self) -> dict[str, Any]:
        """JSON-able form (no env values: changes carry display values only)."""
        data = dataclasses.asdict(self)
        data["changes"] = [c.to_json() for c in self.changes]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Action:
        """Reverse :meth:`to_json`."""
        d = dict(data)
        d["changes"] = tuple(FieldChange(c["field"], c["old"], c["new"]) for c in d["changes"])
        d["depends_on"] = tuple(d["depends_on"])
        return cls(**d)


@dataclasses.dataclass(frozen=True)
class Observed:
    """What the engine has now: every container, the images the manifest names (None:
    missing) and the content hash of each image source (build context or tar)."""

    containers: tuple[ContainerInfo, ...]
    images: Mapping[str, ImageInfo | None]
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Plan:
    """An ordered plan for one manifest on one engine."""

    manifest: str
    path: str
    actions: tuple[Action, ...]
    fingerprint: str  # of the observed state the plan was made from
    desired: str  # hash of the desired state (specs, image sources)
    prune: bool = False
    orphans: tuple[str, ...] = ()  # this manifest's undeclared containers, kept (no --prune)

    @property
    def changes_anything(self) -> bool:
        """True when applying would make any engine write."""
        return any(a.changes_anything for a in self.actions)

    def counts(self) -> dict[str, int]:
        """Number of actions of each kind."""
        out: dict[str, int] = {}
        for a in self.actions:
            out[a.kind] = out.get(a.kind, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        """The saved-plan document (``plan -o PLAN.json``)."""
        return {"version": 1, "manifest": self.manifest, "path": self.path,
                "fingerprint": self.fingerprint, "desired": self.desired, "prune": self.prune,
                "orphans": list(self.orphans), "actions": [a.to_json() for a in self.actions]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        """Reverse :meth:`to_json`; a document of another shape is refused."""
        try:
            if data["version"] != 1:
                raise ValidationError(f"saved plan version {data['version']} is not known")
            return cls(str(data["manifest"]), str(data["path"]),
                       tuple(Action.from_json(a) for a in data["actions"]),
                       str(data["fingerprint"]), str(data["desired"]), bool(data["prune"]),
                       tuple(data["orphans"]))
        except (KeyError, TypeError) as exc:
            raise ValidationError(f"not a saved Shipmate plan (missing {exc})",
                                  hint="make one with: shipmate plan FILE -o PLAN.json") from exc


def import_marker(tag: str, digest: str) -> str:
    """The extra tag recording which tar an imported image came from (``docker import``
    cannot set labels)."""
    repo = tag.rsplit(":", 1)[0] if ":" in tag.rsplit("/", 1)[-1] else tag
    return f"{repo}:shipmate-src-{digest[:16]}"


def image_refs(manifest: Manifest, sources: Mapping[str, str]) -> list[str]:
    """Every image reference the plan looks up: declared tags, containers' images, and the
    import markers."""
    refs = {i.tag for i in manifest.images} | {c.spec.image for c in manifest.containers}
    refs |= {import_marker(i.tag, sources[i.tag]) for i in manifest.images
             if i.source == "import" and i.tag in sources}
    return sorted(refs)


def make_plan(manifest: Manifest, observed: Observed, *, prune: bool = False) -> Plan:
    """The plan converging the engine to ``manifest``. Refuses (before any change) a missing
    image, a declared name held by a container of someone else, or a host port held by one.
    A restart-policy change alone is an in-place update (``docker update``)."""
    image_actions = [a for a in (_image_action(i, observed) for i in manifest.images) if a]
    rebuilt = {a.name for a in image_actions}
    _check_images(manifest, observed)
    ours = [c for c in observed.containers if c.labels.get(MANIFEST_LABEL) == manifest.name]
    _check_foreign(manifest, observed.containers, ours)
    by_name: dict[str, list[ContainerInfo]] = {}
    for c in ours:
        by_name.setdefault(c.labels.get(CONTAINER_LABEL) or c.name, []).append(c)
    deletes: list[Action] = []
    container_actions: list[Action] = []
    for decl in manifest.containers:  # already in dependency order
        found = sorted(by_name.pop(decl.name, []), key=_preference)
        deletes += [Action("delete", decl.name, "leftover of an interrupted replace",
                           container_id=c.id) for c in found[1:]]
        container_actions.append(_container_action(decl, found[0] if found else None,
                                                   observed, rebuilt))
    orphans = sorted(by_name)
    if prune:
        deletes += [Action("delete", name, "no longer declared (--prune)", container_id=c.id)
                    for name in orphans for c in by_name[name]]
    return Plan(manifest.name, manifest.path, (*image_actions, *deletes, *container_actions),
                fingerprint(manifest, observed), desired_hash(manifest, observed), prune,
                () if prune else tuple(orphans))


def _preference(c: ContainerInfo) -> tuple[bool, bool, str]:
    """Which of several containers of one name to keep: running, canonically named."""
    logical = c.labels.get(CONTAINER_LABEL) or c.name
    return (not c.running, c.name != logical, c.id)


def _image_action(img: ImageDecl, observed: Observed) -> Action | None:
    have = observed.images.get(img.tag)
    if img.source == "bootstrap":
        if have is None:
            raise ValidationError(f"{img.where}: image {img.tag} is missing",
                                  hint="build it with: shipmate images:bootstrap")
        return None
    digest = observed.sources.get(img.tag, "")
    if img.source == "build":
        if have is not None and have.labels.get(SOURCE_LABEL) == digest:
            return None
        why = "missing" if have is None else "build context, Dockerfile or args changed"
        return Action("build", img.tag, why)
    marker = observed.images.get(import_marker(img.tag, digest))
    if have is not None and marker is not None and marker.id == have.id:
        return None
    return Action("import", img.tag, "missing" if have is None else "tar file changed")


def _check_images(manifest: Manifest, observed: Observed) -> None:
    declared = {i.tag for i in manifest.images}
    for decl in manifest.containers:
        ref = decl.spec.image
        if ref not in declared and observed.images.get(ref) is None:
            raise ValidationError(
                f"{decl.where}: container {decl.name}: image {ref} not found on this engine",
                hint="there is no registry to pull from: declare it under `images:` (build, "
                "import or bootstrap) or build it first")


def _check_foreign(manifest: Manifest, containers: Sequence[ContainerInfo],
                   ours: Sequence[ContainerInfo]) -> None:
    """A declared name or fixed host port held by a container this manifest does not own."""
    mine = {c.id for c in ours}
    others = [c for c in containers if c.id not in mine]
    for decl in manifest.containers:
        for c in others:
            if c.name == decl.name:
                owner = c.labels.get(MANIFEST_LABEL)
                raise ConflictError(
                    f"{decl.where}: a container named {decl.name} exists and is not managed by "
                    f"manifest {manifest.name}" + (f" (it belongs to {owner})" if owner else ""),
                    hint=f"remove or rename it (docker rm -f {decl.name}), or rename yours")
            if not c.running:
                continue
            for port, where in zip(decl.spec.ports, decl.port_where, strict=True):
                if any(ports_clash(port, held) for held in c.ports):
                    raise ConflictError(
                        f"{where}: host port {port.host_port}/{port.protocol} of {decl.name} is "
                        f"held by container {c.name}", hint="stop that container or pick "
                        "another host port")


def _container_action(decl: ContainerDecl, info: ContainerInfo | None, observed: Observed,
                      rebuilt: set[str]) -> Action:
    spec = decl.spec
    if info is None:
        return Action("create", decl.name, "not running here yet", depends_on=decl.depends_on,
                      spec_hash=spec_hash(spec))
    pending = spec.image in rebuilt
    have = observed.images.get(spec.image)
    image_id = None if pending or have is None else have.id
    changes = diff(spec, info, image_id=image_id, is_secret=decl.is_secret)
    forcing = [c.field for c in changes if c.replace]
    kind: ActionKind = "replace" if forcing or pending else "update" if changes else "noop"
    reason = ", ".join(forcing) if forcing else ", ".join(c.field for c in changes)
    strategy = ""
    if kind == "replace":
        strategy, why = replace_strategy(decl.spec, info, decl.replace)
        if not forcing:
            reason = f"image {spec.image} is rebuilt first; replaced only if its ID changes"
        reason += f" ({why})" if why else ""
    return Action(kind, decl.name, reason, changes, info.id, strategy, decl.depends_on,
                  spec_hash(spec), pending_image=pending and not forcing)


def replace_strategy(spec: ContainerSpec, old: ContainerInfo,
                     preferred: str = "start-first") -> tuple[str, str]:
    """(strategy, why): start-first unless ``preferred`` says otherwise or a fixed host port
    of the new container is held by the old one (both cannot bind it at once)."""
    if preferred == "stop-first":
        return "stop-first", ""
    for port in spec.ports:
        if any(ports_clash(port, held) for held in old.ports):
            return "stop-first", f"stop-first: host port {port.host_port} is fixed"
    return "start-first", ""


def fingerprint(manifest: Manifest, observed: Observed) -> str:
    """Hash of the observed state that matters to this manifest: its containers and those
    holding declared names, the images it names, and its image sources."""
    names = {d.name for d in manifest.containers}
    rows = sorted(
        [c.id, c.name, c.state, c.image_id, sorted(c.labels.items()),
         [p.host_port for p in c.ports]]
        for c in observed.containers
        if c.labels.get(MANIFEST_LABEL) == manifest.name or c.name in names
    )
    images = {k: (v.id if v else None) for k, v in sorted(observed.images.items())}
    return _digest({"containers": rows, "images": images, "sources": dict(observed.sources)})


def desired_hash(manifest: Manifest, observed: Observed) -> str:
    """Hash of what the manifest asks for: specs, how to converge them, image sources."""
    return _digest({
        "name": manifest.name,
        "containers": [[spec_hash(d.spec), list(d.depends_on), d.replace] for d in
                       manifest.containers],
        "images": [dataclasses.asdict(i) | {"where": ""} for i in manifest.images],
        "sources": dict(observed.sources),
    })


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def desired_specs(manifest: Manifest) -> dict[str, ContainerSpec]:
    """Declared specs by container name."""
    return {d.name: d.spec for d in manifest.containers}
