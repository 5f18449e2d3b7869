"""What the dashboard reads from the store, in as few reads as it can: the whole platform
at one revision for the overview and the live fragments (:func:`read_platform`), one app's
records for its page (:func:`read_app`). Decoding is tolerant: a record that cannot be read
is left out, as the router does, so one broken record does not take a page down."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shipmate.errors import ShipmateError, ValidationError
from shipmate.paas.acl import ACL_PREFIX
from shipmate.paas.model import App, Release
from shipmate.paas.state import APPS
from shipmate.router import keys as route_keys
from shipmate.scheduler import registry as reg
from shipmate.scheduler.model import Machine, Placement, UnitState, loads
from shipmate.store.base import KeyValue, Op, Store
from shipmate.web.dashboard.access import decode_grants

if TYPE_CHECKING:
    from shipmate.paas.service import Paas


@dataclasses.dataclass(frozen=True)
class AppInfo:
    """An app as the overview shows it."""

    name: str
    locked: bool
    created: float
    current: int  # 0: never deployed
    formation: dict[str, int]


@dataclasses.dataclass(frozen=True)
class Platform:
    """Apps, machines, units and endpoints at one store revision."""

    revision: int
    apps: dict[str, AppInfo]
    machines: dict[str, Machine]
    units: tuple[str, ...]
    desired: dict[str, str]
    placements: dict[str, tuple[str, ...]]
    states: tuple[UnitState, ...]
    endpoints: tuple[route_keys.EndpointRecord, ...]
    global_domain: str
    grants: dict[str, frozenset[str]]


class Memo:
    """Decoded records by key, kept while their mod revision stays the same: a live page
    re-reads the platform every second, and most records have not changed since."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, Any]] = {}

    def decode(self, kv: KeyValue, fn: Callable[[KeyValue], Any]) -> Any:
        """``fn(kv)``, computed once per revision of the key."""
        hit = self._seen.get(kv.key)
        if hit is not None and hit[0] == kv.mod_revision:
            return hit[1]
        value = fn(kv)
        self._seen[kv.key] = (kv.mod_revision, value)
        return value

    def forget_others(self, live: int, keys: Callable[[], set[str]]) -> None:
        """Drop the records of deleted keys once they are as many as the live ones."""
        if len(self._seen) > 2 * live + 100:
            wanted = keys()
            self._seen = {k: v for k, v in self._seen.items() if k in wanted}


def _json(kv: KeyValue) -> Any:
    try:
        return json.loads(kv.value)
    except ValueError:
        return None


def _app_part(kv: KeyValue) -> tuple[str, str, Any] | None:
    """(app, part, value) of an app's meta, current or formation record."""
    app, _, part = kv.key.removeprefix(APPS).partition("/")
    if part not in ("meta", "current", "formation"):
        return None
    data = _json(kv)
    return (app, part, data) if isinstance(data, dict) else None


def decode_apps(kvs: list[KeyValue], memo: Memo | None = None) -> dict[str, AppInfo]:
    """The apps among the records under ``/shipmate/apps/`` (releases are not decoded)."""
    memo = memo or Memo()
    meta: dict[str, dict[str, Any]] = {}
    current: dict[str, int] = {}
    formation: dict[str, dict[str, int]] = {}
    for kv in kvs:
        if not kv.key.endswith(("/meta", "/current", "/formation")):
            continue
        found = memo.decode(kv, _app_part)
        if found is None:
            continue
        app, part, data = found
        if part == "meta":
            meta[app] = data
        elif part == "current" and isinstance(data.get("version"), int):
            current[app] = data["version"]
        elif part == "formation":
            formation[app] = {str(k): v for k, v in data.items() if isinstance(v, int)}
    return {name: AppInfo(name, bool(m.get("locked")), float(m.get("created", 0)),
                          current.get(name, 0), formation.get(name, {"web": 1}))
            for name, m in sorted(meta.items())}


def _fleet_record(kv: KeyValue) -> tuple[str, str, Any] | None:
    """(kind, name, value) of one fleet registry record (unit texts are not parsed)."""
    key = kv.key
    try:
        if key.startswith(reg.UNITS):
            return "unit", key[len(reg.UNITS):], None
        if key.startswith(reg.DESIRED):
            return "desired", key[len(reg.DESIRED):], str(loads(kv.value)["state"])
        if key.startswith(reg.PLACEMENTS):
            return ("placement", key[len(reg.PLACEMENTS):],
                    Placement.from_json(loads(kv.value)).machines)
        if key.startswith(reg.MACHINES):
            return "machine", key[len(reg.MACHINES):], Machine.from_json(loads(kv.value))
        if key.startswith(reg.STATES):
            return "state", "", UnitState.from_json(loads(kv.value))
    except (ValueError, KeyError, TypeError, ValidationError):
        return None
    return None


def decode_fleet(kvs: list[KeyValue], memo: Memo | None = None
                 ) -> tuple[dict[str, Machine], tuple[str, ...], dict[str, str],
                            dict[str, tuple[str, ...]], tuple[UnitState, ...]]:
    """Machines, unit names, desired states, placements and reported states."""
    memo = memo or Memo()
    machines: dict[str, Machine] = {}
    units: list[str] = []
    desired: dict[str, str] = {}
    placements: dict[str, tuple[str, ...]] = {}
    states: list[UnitState] = []
    for kv in kvs:
        found = memo.decode(kv, _fleet_record)
        if found is None:
            continue
        kind, name, value = found
        if kind == "unit":
            units.append(name)
        elif kind == "desired":
            desired[name] = value
        elif kind == "placement":
            placements[name] = value
        elif kind == "machine":
            machines[name] = value
        else:
            states.append(value)
    return machines, tuple(units), desired, placements, tuple(states)


def _endpoint(kv: KeyValue) -> route_keys.EndpointRecord | None:
    found = route_keys.decode([(kv.key, kv.value)]).endpoints
    return found[0] if found else None


async def read_platform(store: Store, memo: Memo | None = None) -> Platform:
    """Everything the overview and the machines page show, in one transaction (records
    unchanged since the last read with ``memo`` are not decoded again)."""
    memo = memo or Memo()
    res = await store.txn([], [
        Op.get(APPS, prefix=True), Op.get(reg.PREFIX, prefix=True),
        Op.get(route_keys.ENDPOINTS_PREFIX, prefix=True),
        Op.get(route_keys.GLOBAL_DOMAIN_KEY), Op.get(ACL_PREFIX, prefix=True)])
    apps, fleet, endpoints, glob, acl = (list(r) for r in res.responses)
    machines, units, desired, placements, states = decode_fleet(fleet, memo)
    records = [e for kv in endpoints if (e := memo.decode(kv, _endpoint)) is not None]
    domain = route_keys.decode([(kv.key, kv.value) for kv in glob]).global_domain
    everything = [*apps, *fleet, *endpoints]
    memo.forget_others(len(everything), lambda: {kv.key for kv in everything})
    return Platform(res.revision, decode_apps(apps, memo), machines, units, desired,
                    placements, states, tuple(records), domain, decode_grants(acl))


@dataclasses.dataclass(frozen=True)
class AppDetail:
    """One app's records for its page (config values are never kept: names only)."""

    app: App
    releases: tuple[Release, ...]
    current: int
    config_keys: tuple[str, ...]
    formation: dict[str, int]
    checks: dict[str, Any]
    urls: tuple[str, ...]


async def read_app(paas: Paas, name: str) -> AppDetail:
    """The app's records (NotFoundError when it does not exist)."""
    state = paas.state
    app = await state.get_app(name)
    current = await state.current(name)
    try:
        urls = tuple(await paas.urls(name))
    except ShipmateError:
        urls = ()
    return AppDetail(app, tuple(await state.releases(name)),
                     current.version if current else 0,
                     tuple(sorted(await state.config(name))), await state.formation(name),
                     await state.checks(name), urls)
