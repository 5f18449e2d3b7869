"""What the base images are and what goes into each (pure: no I/O beyond reading the
Dockerfiles shipped as package data).

Each built image carries :data:`INPUTS_LABEL`, a hash of everything that determines it (mirror,
suite, Dockerfile text, the parent image's ID). Bootstrap compares that label with the hash it
would build now and skips the image when they match; a new parent ID cascades rebuilds down.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Collection
from importlib import resources

from shipmate.errors import ValidationError

INPUTS_LABEL = "shipmate.image.inputs"
KIND_LABEL = "shipmate.image"
BASE_REPOSITORY = "shipmate/base"
ROOTFS_TAG_SUFFIX = "-rootfs"
VARIANT = "minbase"
# Bumped when the bootstrap procedure itself changes in a way the inputs do not show.
RECIPE_VERSION = 2


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One image: its reference, Dockerfile (package data name) and parent (None: the base,
    made from a debootstrap'd root filesystem)."""

    ref: str
    dockerfile: str
    parent: str | None
    about: str  # shown in progress

    @property
    def repository(self) -> str:
        """``shipmate/node`` of ``shipmate/node:18``."""
        return self.ref.rpartition(":")[0]

    @property
    def tag(self) -> str:
        """``18`` of ``shipmate/node:18``."""
        return self.ref.rpartition(":")[2]


def base_ref(suite: str) -> str:
    """``shipmate/base:SUITE``."""
    return f"{BASE_REPOSITORY}:{suite}"


def recipes(suite: str = "bookworm", *, services: bool = False) -> list[Recipe]:
    """The images to build, parents first. The language images are bookworm's (nodejs 18,
    python3 3.11), so they are built only on that suite; so are the service images
    (postgresql 15, redis 7), included with ``services`` (or when named)."""
    base = base_ref(suite)
    out = [Recipe(base, "base.Dockerfile", None, "debootstrap, ~30 s")]
    if suite == "bookworm":
        out += [
            Recipe("shipmate/node:18", "node.Dockerfile", base, "Debian's nodejs + npm, ~1 min"),
            Recipe("shipmate/python:3.11", "python.Dockerfile", base,
                   "Debian's python3 + pip + venv, ~1 min"),
        ]
        if services:
            out += [
                Recipe("shipmate/postgres:15", "postgres.Dockerfile", base,
                       "Debian's postgresql-15, ~1 min"),
                Recipe("shipmate/redis:7", "redis.Dockerfile", base,
                       "Debian's redis-server 7, ~30 s"),
            ]
    return out


def select(all_recipes: list[Recipe], only: Collection[str] | None) -> list[Recipe]:
    """The recipes named in ``only`` plus their parents, in build order (all if None)."""
    if only is None:
        return all_recipes
    unknown = set(only) - {r.ref for r in all_recipes}
    if unknown:
        raise ValidationError(f"unknown base image {sorted(unknown)[0]!r}",
                              hint="one of: " + ", ".join(r.ref for r in all_recipes))
    wanted = set(only) | {r.parent for r in all_recipes if r.ref in only and r.parent}
    return [r for r in all_recipes if r.ref in wanted]


def dockerfile_text(name: str) -> str:
    """A Dockerfile shipped in ``shipmate/engine/dockerfiles``."""
    return resources.files("shipmate.engine").joinpath("dockerfiles", name).read_text()


def inputs_hash(recipe: Recipe, *, mirror: str, suite: str, dockerfile: str,
                parent_id: str | None) -> str:
    """SHA-256 over everything that determines ``recipe``'s image. Proxies are left out on
    purpose: they change where packages come from, not what is built."""
    inputs = {
        "version": RECIPE_VERSION,
        "ref": recipe.ref,
        "mirror": mirror.rstrip("/"),
        "suite": suite,
        "variant": VARIANT,
        "dockerfile": dockerfile,
        "parent": parent_id,
    }
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def build_args(recipe: Recipe, *, rootfs: str | None, apt_proxy: str | None,
               http_proxy: str | None) -> dict[str, str]:
    """Build arguments: the parent (``BASE``) or imported root filesystem (``ROOTFS``) and the
    optional proxies the Dockerfiles honour."""
    args: dict[str, str] = {}
    if recipe.parent is None:
        args["ROOTFS"] = rootfs or ""
    else:
        args["BASE"] = recipe.parent
    if apt_proxy:
        args["APT_PROXY"] = apt_proxy
    if http_proxy:
        args["http_proxy"] = http_proxy
    return args


def debootstrap_command(suite: str, root: str, mirror: str) -> list[str]:
    """The debootstrap call making the base root filesystem."""
    return ["debootstrap", f"--variant={VARIANT}", suite, root, mirror]


_SUITE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_MIRROR = re.compile(r"^(https?|file):/{1,3}[^\s'\"]+$")


def validate(suite: str, mirror: str) -> None:
    """Refuse a suite or mirror that could not be a Debian suite name or mirror URL."""
    if not _SUITE.match(suite):
        raise ValidationError(f"invalid Debian suite {suite!r}", hint="e.g. bookworm")
    if not _MIRROR.match(mirror):
        raise ValidationError(f"invalid Debian mirror {mirror!r}",
                              hint="an http(s):// URL, e.g. http://deb.debian.org/debian")
