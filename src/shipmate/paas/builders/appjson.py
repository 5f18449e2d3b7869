"""Dokku's ``app.json``, read as Dokku reads it (pure: text in, a frozen record out).

- ``//`` line comments and ``/* */`` block comments are accepted outside strings (Dokku
  strips them before parsing), so an ``app.json`` written for Dokku parses unchanged.
- ``formation``: process quantities, ``{"web": {"quantity": 0}}`` (Dokku's and Heroku's form)
  or the shorthand ``{"web": 0}``. They apply to process types the app has no quantity for yet
  (the first deploy, or a type new to the app); ``ps:scale`` changes them afterwards.
- ``scripts.dokku.predeploy`` / ``scripts.dokku.postdeploy``: commands run in a one-off
  container of the new release, before it starts / after it takes traffic.
- ``healthchecks``: read by :mod:`.checks`.
- ``cron``: scheduled tasks, read by :mod:`shipmate.paas.cron` (a bad schedule rejects the
  push, naming the line); the release records them and the scheduler leader runs them.
- ``engines.node``: the Node.js version asked for (the builder warns when it is not the one
  installed).
- Every other top-level field (``addons``, ``buildpacks``, ``image``, ``env``...) is ignored;
  :attr:`AppJson.ignored` names them so the build can say so once.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

from shipmate.errors import ValidationError
from shipmate.paas.cron import CronEntry, parse_entries
from shipmate.paas.model import MAX_SCALE, PROCESS_TYPE

#: The fields Shipmate acts on; any other top-level field is ignored with a notice.
USED = frozenset({"formation", "scripts", "healthchecks", "cron", "engines", "name",
                  "description"})
_MAJOR = re.compile(r"(\d+)")


@dataclasses.dataclass(frozen=True)
class AppJson:
    """What Shipmate uses of an ``app.json``."""

    formation: Mapping[str, int] = dataclasses.field(default_factory=dict)
    predeploy: str = ""
    postdeploy: str = ""
    node_engine: str = ""
    cron: tuple[CronEntry, ...] = ()
    ignored: tuple[str, ...] = ()
    data: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def strip_comments(text: str) -> str:
    """``text`` without ``//`` and ``/* */`` comments outside JSON strings (line breaks are
    kept, so a JSON error still names the right line)."""
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            skipped = text[i:n if end < 0 else end + 2]
            out.append("\n" * skipped.count("\n"))
            i = n if end < 0 else end + 2
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def loads(text: str) -> dict[str, Any]:
    """``app.json`` text (comments allowed) as a dict; ValidationError when it is not an
    object of valid JSON."""
    try:
        data = json.loads(strip_comments(text))
    except ValueError as exc:
        raise ValidationError(f"app.json is not valid JSON: {exc}",
                              hint="Dokku's app.json format: https://dokku.com/docs/"
                                   "appendices/file-formats/app-json/") from exc
    if not isinstance(data, dict):
        raise ValidationError("app.json must hold a JSON object")
    return data


def parse(text: str) -> AppJson:
    """Read an ``app.json``."""
    data = loads(text)
    scripts = data.get("scripts") or {}
    dokku = scripts.get("dokku") if isinstance(scripts, dict) else None
    if (scripts and not isinstance(scripts, dict)) or (
            dokku is not None and not isinstance(dokku, dict)):
        raise ValidationError("app.json scripts.dokku must map predeploy/postdeploy to "
                              "commands")
    phases = {k: _script(dokku or {}, k) for k in ("predeploy", "postdeploy")}
    engines = data.get("engines") or {}
    node = engines.get("node", "") if isinstance(engines, dict) else ""
    cron, cron_ignored = parse_entries(data.get("cron"), text)
    return AppJson(formation=_formation(data.get("formation")), node_engine=str(node or ""),
                   cron=cron, data=data, **phases,
                   ignored=tuple(sorted(k for k in data if k not in USED)) + cron_ignored)


def _script(scripts: Mapping[str, Any], name: str) -> str:
    value = scripts.get(name, "")
    if not isinstance(value, str):
        raise ValidationError(f"app.json scripts.dokku.{name} must be a command string, "
                              f"got {value!r}")
    return value.strip()


def _formation(raw: Any) -> dict[str, int]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValidationError("app.json formation must map process types to quantities",
                              hint='e.g. {"formation": {"web": {"quantity": 1}}}')
    out: dict[str, int] = {}
    for proc, value in raw.items():
        qty = value.get("quantity", 1 if proc == "web" else 0) if isinstance(value, dict) \
            else value
        if not PROCESS_TYPE.fullmatch(str(proc)):
            raise ValidationError(f"app.json formation: {proc!r} is not a process type name")
        if isinstance(qty, bool) or not isinstance(qty, int) or not 0 <= qty <= MAX_SCALE:
            raise ValidationError(f"app.json formation.{proc}: quantity must be a whole number "
                                  f"from 0 to {MAX_SCALE}, got {qty!r}")
        out[str(proc)] = qty
    return out


def node_mismatch(wanted: str, installed: int) -> bool:
    """True when ``engines.node`` (``"20.x"``, ``">=16"``, ``"^20.1"``) plainly asks for a
    major other than ``installed``. Ranges that include it (``>=16``, ``*``) do not."""
    text = wanted.strip()
    if not text or text in ("*", "x", "latest") or text.startswith((">", "<")) \
            or "||" in text:
        return False
    match = _MAJOR.search(text)
    return match is not None and int(match.group(1)) != installed


def initial_formation(declared: Mapping[str, int], current: Mapping[str, int],
                      processes: Mapping[str, str]) -> dict[str, int]:
    """The formation a deploy records: ``current`` (what ``ps:scale`` set), with app.json's
    quantities for types it does not have yet and Dokku's default, ``web=1`` (every other
    type 0 until scaled), when neither says."""
    out = dict(current)
    for proc, qty in declared.items():
        out.setdefault(proc, qty)
    if "web" in processes:
        out.setdefault("web", 1)
    return out
