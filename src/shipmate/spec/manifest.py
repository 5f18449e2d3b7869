"""Declarative manifests (YAML) -> :class:`ContainerSpec` plus what converging needs.

A manifest::

    name: web                       # optional, default: the file's stem
    images:
      - tag: example/site:1.0
        build: ./site               # or import: ./rootfs.tar, or bootstrap: true
        args: {NODE_VERSION: "18"}
    containers:
      site:
        image: example/site:1.0
        command: ["node", "server.js"]
        ports: ["80:8000"]
        env: {NODE_PORT: "8000"}
        env_file: site.env
        volumes: ["./data:/data"]
        restart: unless-stopped
        health: {test: "curl -f localhost:8000", running_for: 2s}
        depends_on: [db]
        replace: start-first
        memory: 256m                # also memory_reservation, and cpus: 0.5

Parsing is pure: :func:`parse_manifest` gets the text and a function reading the env files it
names. :func:`load_manifest` is the thin file-reading edge. Every refusal names ``file:line``
and happens before anything changes.
"""

from __future__ import annotations

import dataclasses
import posixpath
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

import yaml

from shipmate.errors import ValidationError
from shipmate.spec.container import ContainerSpec, make_spec
from shipmate.spec.manifest_checks import check_depends_on, check_host_ports
from shipmate.spec.manifest_fields import (
    check_env_name,
    parse_env_file,
    parse_health,
    parse_port,
    parse_resources,
    parse_volume,
    refuse_resource_aliases,
)
from shipmate.spec.manifest_yaml import Source
from shipmate.spec.names import validate_app_name, validate_container_name

MANIFEST_LABEL = "shipmate.manifest"
TOP_KEYS = ("version", "name", "images", "containers")
IMAGE_KEYS = ("tag", "build", "dockerfile", "args", "import", "bootstrap", "network")
CONTAINER_KEYS = (
    "image", "command", "entrypoint", "ports", "env", "env_file", "volumes", "labels",
    "restart", "health", "depends_on", "replace", "secrets", "working_dir", "user", "hostname",
    "network", "init", "memory", "memory_reservation", "cpus",
)
RESTART = ("no", "always", "unless-stopped", "on-failure")
ReplaceStrategy = Literal["start-first", "stop-first"]
ImageSource = Literal["build", "import", "bootstrap"]
SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "KEY")


@dataclasses.dataclass(frozen=True)
class ImageDecl:
    """An image the manifest provides: built from a context, imported from a tar, or one of
    the bootstrapped ``shipmate/*`` images (which must already exist)."""

    tag: str
    source: ImageSource
    path: str = ""  # build context directory or tar file (absolute)
    dockerfile: str = "Dockerfile"
    args: tuple[tuple[str, str], ...] = ()
    network: str | None = None
    where: str = ""


@dataclasses.dataclass(frozen=True)
class ContainerDecl:
    """A declared container: its spec plus how to converge it."""

    spec: ContainerSpec
    depends_on: tuple[str, ...] = ()
    replace: ReplaceStrategy = "start-first"
    running_for: float = 2.0  # seconds it must stay up to count as healthy without a check
    wait: float = 60.0  # seconds to wait for healthy before giving up
    secrets: frozenset[str] = frozenset()
    where: str = ""
    port_where: tuple[str, ...] = ()  # file:line of each spec port, in spec order

    @property
    def name(self) -> str:
        """The container's name."""
        return self.spec.name

    def is_secret(self, key: str) -> bool:
        """True when env ``key`` is shown only as a hash (declared, or a telling name)."""
        upper = key.upper()
        return key in self.secrets or any(word in upper for word in SECRET_WORDS)


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A parsed, validated manifest."""

    name: str
    path: str
    images: tuple[ImageDecl, ...]
    containers: tuple[ContainerDecl, ...]  # in dependency order (dependencies first)

    def container(self, name: str) -> ContainerDecl:
        """The declaration of container ``name``."""
        for decl in self.containers:
            if decl.name == name:
                return decl
        raise KeyError(name)


ReadFile = Callable[[str], str]


def load_manifest(path: str | Path) -> Manifest:
    """Read and parse the manifest at ``path`` (and the env files it names)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ValidationError(f"cannot read manifest {p}: {exc.strerror}") from exc
    return parse_manifest(text, str(p.resolve()), read_file=_read_text)


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}") from exc


def parse_manifest(text: str, path: str, *, read_file: ReadFile) -> Manifest:
    """Parse manifest ``text`` (from file ``path``, used in messages and to resolve relative
    paths). ``read_file`` reads env files."""
    src = Source(path)
    root = src.compose(text)
    top = src.fields(root, "manifest", TOP_KEYS)
    if "version" in top and src.integer(top["version"][1], "version") != 1:
        raise src.error(top["version"][1], "only manifest version 1 is known")
    stem = Path(path).stem
    name = src.string(top["name"][1], "name") if "name" in top else stem
    try:
        validate_app_name(name)
    except ValidationError as exc:
        at = top["name"][1] if "name" in top else root
        raise src.error(at, f"manifest name {name!r} is invalid", hint=exc.hint) from exc
    base = posixpath.dirname(path)
    images = tuple(
        _image(src, item, base) for item in src.sequence(top["images"][1], "images")
    ) if "images" in top else ()
    _no_duplicate_tags(src, images)
    if "containers" not in top:
        raise src.error(root, "`containers:` is required")
    entries = src.mapping(top["containers"][1], "containers")
    decls = {n: _container(src, n, key, body, base, read_file)
             for n, (key, body) in entries.items()}
    check_host_ports(list(decls.values()))
    order = check_depends_on(src, entries, {n: d.depends_on for n, d in decls.items()})
    return Manifest(name, path, images, tuple(decls[n] for n in order))


def _image(src: Source, node: yaml.Node, base: str) -> ImageDecl:
    f = src.fields(node, "image", IMAGE_KEYS)
    if "tag" not in f:
        raise src.error(node, "image: `tag` is required")
    tag = src.string(f["tag"][1], "image tag")
    sources = [k for k in ("build", "import", "bootstrap") if k in f]
    if len(sources) != 1:
        raise src.error(node, f"image {tag}: give exactly one of build, import, bootstrap")
    kind = sources[0]
    if kind == "bootstrap":
        if not src.boolean(f["bootstrap"][1], "bootstrap") or not tag.startswith("shipmate/"):
            raise src.error(f["bootstrap"][1], "bootstrap: true is for shipmate/* images",
                            hint="shipmate images:bootstrap builds them")
        return ImageDecl(tag, "bootstrap", where=src.where(node))
    where = src.string(f[kind][1], kind)
    extra = [k for k in ("dockerfile", "args", "network") if k in f]
    if kind == "import" and extra:
        raise src.error(f[extra[0]][0], f"{extra[0]} applies to build, not import")
    return ImageDecl(
        tag, "build" if kind == "build" else "import",
        path=posixpath.normpath(posixpath.join(base, where)),
        dockerfile=src.string(f["dockerfile"][1], "dockerfile") if "dockerfile" in f
        else "Dockerfile",
        args=tuple(sorted(src.str_map(f["args"][1], "args").items())) if "args" in f else (),
        network=src.string(f["network"][1], "network") if "network" in f else None,
        where=src.where(node),
    )


def _no_duplicate_tags(src: Source, images: tuple[ImageDecl, ...]) -> None:
    seen: dict[str, str] = {}
    for img in images:
        if img.tag in seen:
            raise ValidationError(f"{img.where}: image {img.tag} declared twice "
                                  f"(first at {seen[img.tag]})")
        seen[img.tag] = img.where


def _container(src: Source, name: str, key: yaml.Node, node: yaml.Node, base: str,
               read_file: ReadFile) -> ContainerDecl:
    try:
        validate_container_name(name)
    except ValidationError as exc:
        raise src.error(key, exc.message, hint=exc.hint) from exc
    if len(name) < 2:  # dockerd refuses one-character names
        raise src.error(key, f"container name {name!r} is too short",
                        hint="use at least two characters")
    refuse_resource_aliases(src, node, name)
    f = src.fields(node, f"container {name}", CONTAINER_KEYS)
    if "image" not in f:
        raise src.error(key, f"container {name}: `image` is required")
    env = _env(src, f, base, read_file)
    ports = [parse_port(src, n) for n in src.sequence(f["ports"][1], "ports")] \
        if "ports" in f else []
    health, running_for, wait = parse_health(src, f["health"][1]) if "health" in f \
        else (None, 2.0, 60.0)
    labels = src.str_map(f["labels"][1], "labels") if "labels" in f else {}
    for label, (lnode, _) in src.mapping(f["labels"][1], "labels").items() if "labels" in f \
            else ():
        if label.startswith("shipmate."):
            raise src.error(lnode, f"label {label!r}: the shipmate. prefix is reserved")
    opt = {k: src.string(f[k][1], k) for k in ("working_dir", "user", "hostname", "network")
           if k in f}
    spec = make_spec(
        name, src.string(f["image"][1], "image"),
        command=_argv(src, f["command"][1], "command") if "command" in f else None,
        entrypoint=_argv(src, f["entrypoint"][1], "entrypoint") if "entrypoint" in f else None,
        env=env, ports=ports,
        mounts=[parse_volume(src, n, base) for n in src.sequence(f["volumes"][1], "volumes")]
        if "volumes" in f else (),
        labels=labels,
        restart=src.word(f["restart"][1], "restart", RESTART) if "restart" in f else "no",
        health=health, init=src.boolean(f["init"][1], "init") if "init" in f else False,
        **opt, **parse_resources(src, f, name)._asdict(),
    )
    where_by_port = {p: src.where(n) for p, n in zip(
        ports, src.sequence(f["ports"][1], "ports") if "ports" in f else [], strict=True)}
    return ContainerDecl(
        spec=spec,
        depends_on=tuple(src.strings(f["depends_on"][1], "depends_on")) if "depends_on" in f
        else (),
        replace="stop-first" if "replace" in f and src.word(
            f["replace"][1], "replace", ("start-first", "stop-first")) == "stop-first"
        else "start-first",
        running_for=running_for, wait=wait,
        secrets=frozenset(src.strings(f["secrets"][1], "secrets")) if "secrets" in f
        else frozenset(),
        where=src.where(key),
        port_where=tuple(where_by_port[p] for p in spec.ports),
    )


def _argv(src: Source, node: yaml.Node, what: str) -> list[str]:
    """A command as a list, or a string split like a shell would (no shell runs it)."""
    if isinstance(node, yaml.SequenceNode):
        return src.strings(node, what)
    text = src.string(node, what)
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise src.error(node, f"{what}: {exc}") from exc


def _env(src: Source, f: Mapping[str, tuple[yaml.Node, yaml.Node]], base: str,
         read_file: ReadFile) -> dict[str, str]:
    """env_file contents first, then ``env:`` on top: the file's content goes into the spec,
    so editing the file changes the spec hash."""
    env: dict[str, str] = {}
    if "env_file" in f:
        node = f["env_file"][1]
        files = src.strings(node, "env_file") if isinstance(node, yaml.SequenceNode) \
            else [src.string(node, "env_file")]
        for rel in files:
            path = posixpath.normpath(posixpath.join(base, rel))
            try:
                env.update(parse_env_file(path, read_file(path)))
            except ValidationError as exc:
                raise src.error(node, exc.message, hint=exc.hint) from exc
    if "env" in f:
        for key, (knode, vnode) in src.mapping(f["env"][1], "env").items():
            check_env_name(src, knode, key)
            env[key] = src.text(vnode, f"env {key}")
    return env
