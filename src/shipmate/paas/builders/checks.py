"""Health checks a release must pass before it takes traffic. Pure parsing of Dokku's
``app.json`` ``healthchecks`` and the older ``CHECKS`` file, and the default check.

Default (no checks declared): the process stays up for ``wait`` seconds (the daemon's
``checks_wait`` setting, 3 s; Dokku's DOKKU_DEFAULT_CHECKS_WAIT is 10) and, for ``web``, its
port answers HTTP. Explicit checks prove the app works: they pass as soon as they pass, with
no stay-up wait unless ``checks:set APP wait N`` asks for one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from shipmate.errors import ValidationError
from shipmate.paas.builders import appjson

DEFAULT_WAIT = 3.0  # the ``checks_wait`` setting's default
DEFAULT_TIMEOUT = 5.0
DEFAULT_ATTEMPTS = 5
# Bounds of every health-check setting (checks:set, app.json, CHECKS): a deploy ends within a
# bounded time, and every check gives the app at least a second to answer.
BOUNDS: Mapping[str, tuple[float, float]] = {
    "wait": (0, 600), "initialDelay": (0, 600), "timeout": (1, 300), "attempts": (1, 100)}


@dataclasses.dataclass(frozen=True)
class Check:
    """One HTTP startup check: GET ``path`` answers 2xx/3xx (and contains ``content``)."""

    path: str = "/"
    content: str = ""
    attempts: int = DEFAULT_ATTEMPTS
    timeout: float = DEFAULT_TIMEOUT
    wait: float = 0.0
    initial_delay: float = 0.0
    name: str = ""


@dataclasses.dataclass(frozen=True)
class CheckPlan:
    """Per process type, the explicit checks (empty: the default check)."""

    checks: Mapping[str, tuple[Check, ...]]
    wait: float | None = None  # the tree's own stay-up wait (CHECKS WAIT=); None: not given

    def to_json(self) -> dict[str, Any]:
        """For the release record."""
        data: dict[str, Any] = {"checks": {
            p: [dataclasses.asdict(c) for c in cs] for p, cs in self.checks.items()}}
        if self.wait is not None:
            data["wait"] = self.wait
        return data

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> CheckPlan:
        """Reverse :meth:`to_json`."""
        checks = {p: tuple(Check(**c) for c in cs) for p, cs in data.get("checks", {}).items()}
        wait = data.get("wait")
        return CheckPlan(checks, float(wait) if wait is not None else None)

    def stay_up(self, settings: Mapping[str, Any], default: float, *, explicit: bool) -> float:
        """Seconds the new processes must stay up after their checks: the app's ``checks:set
        wait`` if set; else none when an explicit check runs (it proved the app works);
        else the tree's ``WAIT=``, or ``default`` (the ``checks_wait`` setting)."""
        if settings.get("wait") is not None:
            return float(settings["wait"])
        if explicit:
            return 0.0
        return self.wait if self.wait is not None else default


def check_setting(key: str, value: Any, where: str = "checks:set") -> float:
    """``value`` of the health-check setting ``key`` (wait, timeout, attempts...) as a number
    within :data:`BOUNDS`, else ValidationError saying the range."""
    if key not in BOUNDS:
        raise ValidationError(f"unknown checks property {key!r}",
                              hint="use wait, timeout or attempts")
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ValidationError(f"{where}: {key} must be a number, got {value!r}")
    low, high = BOUNDS[key]
    if not low <= value <= high or (key == "attempts" and value != int(value)):
        unit = "a whole number" if key == "attempts" else "seconds"
        raise ValidationError(f"{where}: {key} {value:g} is out of range",
                              hint=f"{key} is {unit} from {low:g} to {high:g}")
    return float(value)


def _num(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"app.json healthchecks: {what} must be a number, got {value!r}")
    return check_setting(what, value, "app.json healthchecks") if what in BOUNDS \
        else float(value)


def parse_app_json(text: str) -> dict[str, tuple[Check, ...]]:
    """Dokku's ``app.json`` format: ``{"healthchecks": {"web": [{"type": "startup", ...}]}}``
    (comments allowed, as in :mod:`.appjson`)."""
    data = appjson.loads(text)
    hc = data.get("healthchecks", {})
    if not isinstance(hc, dict):
        raise ValidationError("app.json healthchecks must map process types to lists")
    out: dict[str, tuple[Check, ...]] = {}
    for proc, items in hc.items():
        if not isinstance(items, list):
            raise ValidationError(f"app.json healthchecks.{proc} must be a list")
        checks = []
        for item in items:
            if not isinstance(item, dict) or item.get("type", "startup") != "startup":
                continue  # liveness/readiness checks are not gates for a deploy
            checks.append(Check(
                path=str(item.get("path", "/")), content=str(item.get("content", "")),
                attempts=int(_num(item.get("attempts", DEFAULT_ATTEMPTS), "attempts")),
                timeout=_num(item.get("timeout", DEFAULT_TIMEOUT), "timeout"),
                wait=_num(item.get("wait", 0), "wait"),
                initial_delay=_num(item.get("initialDelay", 0), "initialDelay"),
                name=str(item.get("name", ""))))
        out[str(proc)] = tuple(checks)
    return out


def parse_checks_file(text: str) -> tuple[tuple[Check, ...], float | None]:
    """The older CHECKS file: ``WAIT=``, ``TIMEOUT=``, ``ATTEMPTS=`` and ``/path content``
    lines (for ``web``). Returns the checks and the wait (None when not given)."""
    settings: dict[str, float] = {"TIMEOUT": DEFAULT_TIMEOUT, "ATTEMPTS": DEFAULT_ATTEMPTS}
    known = ("WAIT", "TIMEOUT", "ATTEMPTS")
    paths: list[tuple[str, str]] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if sep and key in known and "/" not in key:
            try:
                number = float(value)
            except ValueError:
                raise ValidationError(f"CHECKS line {n}: {key} must be a number") from None
            settings[key] = check_setting(key.lower(), number, f"CHECKS line {n}")
            continue
        path, _, content = line.partition(" ")
        if not path.startswith("/") and not path.startswith("//"):
            raise ValidationError(f"CHECKS line {n}: expected `/path expected content`")
        paths.append((path, content.strip()))
    checks = tuple(Check(path=p, content=c, attempts=int(settings["ATTEMPTS"]),
                         timeout=settings["TIMEOUT"]) for p, c in paths)
    return checks, settings.get("WAIT")


def plan_checks(files: Mapping[str, str]) -> CheckPlan:
    """The checks for a tree, from ``app.json`` (preferred) or ``CHECKS``."""
    if "app.json" in files:
        parsed = parse_app_json(files["app.json"])
        if parsed:
            return CheckPlan(parsed)
    if "CHECKS" in files:
        web, wait = parse_checks_file(files["CHECKS"])
        return CheckPlan({"web": web} if web else {}, wait)
    return CheckPlan({})
