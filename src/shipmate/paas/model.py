"""PaaS records and the rules for their fields. Pure: no I/O."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

from shipmate.errors import ValidationError

CONFIG_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PROCESS_TYPE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,29}$")
MAX_SCALE = 50
# Config keys Shipmate sets itself in every container; users may not override them.
RESERVED_KEYS = frozenset({"PORT", "DYNO", "GIT_REV"})


def validate_config_key(key: str) -> str:
    """A config var name must be a shell-style identifier."""
    if not CONFIG_KEY.fullmatch(key):
        raise ValidationError(f"Invalid config key {key!r}",
                              hint="keys are letters, digits and '_', not starting with a digit")
    if key in RESERVED_KEYS:
        raise ValidationError(f"{key} is set by Shipmate in every container and cannot be set",
                              hint="web processes must listen on $PORT (5000)")
    return key


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` words (Dokku's ``config:set``) into a dict; values are kept exactly."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValidationError(f"Invalid env pair {pair!r}", hint="use KEY=VALUE")
        out[validate_config_key(key)] = value
    return out


def parse_scale(pairs: list[str]) -> dict[str, int]:
    """``web=2 worker=1`` into ``{"web": 2, "worker": 1}``."""
    out: dict[str, int] = {}
    for pair in pairs:
        proc, sep, count = pair.partition("=")
        if not sep or not PROCESS_TYPE.fullmatch(proc) or not count.isdigit():
            raise ValidationError(f"Invalid scale pair {pair!r}", hint="use TYPE=COUNT, e.g. web=2")
        if int(count) > MAX_SCALE:
            raise ValidationError(f"{proc}={count} is more than {MAX_SCALE} instances")
        out[proc] = int(count)
    return out


def parse_procfile(text: str) -> dict[str, str]:
    """Procfile lines ``type: command`` (comments and blanks ignored)."""
    procs: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, cmd = line.partition(":")
        name = name.strip()
        if not sep or not PROCESS_TYPE.fullmatch(name) or not cmd.strip():
            raise ValidationError(f"Procfile line {n} is malformed: {raw!r}",
                                  hint="each line is `type: command`, e.g. `web: npm start`")
        procs[name] = cmd.strip()
    return procs


@dataclasses.dataclass(frozen=True)
class App:
    """An app: its name and flags."""

    name: str
    created: float
    locked: bool = False


@dataclasses.dataclass(frozen=True)
class Release:
    """An immutable release: an image, the config and the formation it ran with."""

    version: int
    image: str  # image ID (sha256:...)
    config: Mapping[str, str]
    formation: Mapping[str, int]
    processes: Mapping[str, str]  # process type -> command ("" = the image's default)
    git_rev: str
    created: float
    description: str = ""
    checks: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: Seconds per deploy step (build, start, checks, switch, total): see paas/timings.py.
    timings: Mapping[str, float] = dataclasses.field(default_factory=dict)
    #: app.json ``cron`` entries (:class:`shipmate.paas.cron.CronEntry` JSON): the
    #: scheduled tasks that run while this release is current.
    cron: tuple[Mapping[str, Any], ...] = ()

    @property
    def label(self) -> str:
        """``v3``."""
        return f"v{self.version}"

    def to_json(self) -> str:
        """Serialised for the store."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str | bytes) -> Release:
        """Read back :meth:`to_json`."""
        data = json.loads(text)
        data["cron"] = tuple(data.get("cron", ()))
        return Release(**data)


def parse_release_label(text: str) -> int:
    """``v3`` or ``3`` -> 3."""
    t = text[1:] if text.startswith("v") else text
    if not t.isdigit() or int(t) < 1:
        raise ValidationError(f"Invalid release {text!r}", hint="use vN as shown by `releases APP`")
    return int(t)
