"""What the dashboard reads from the store, in as few reads as it can: the whole platform
at one revision for the overview and the live fragments (:func:`read_platform`), one app's
records for its page (:func:`read_app`). Decoding is tolerant: a record that cannot be read
is left out, as the router does, so one broken record does not take a page down."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from typing import TYPE_CHECKING, Any

from shipmate.errors import ShipmateError, ValidationError
from shipmate.paas.model import App, Release
from shipmate.paas.state import APPS
from shipmate.router import keys as route_keys
from shipmate.scheduler import registry as reg
from shipmate.scheduler.model import Machine, Placement, UnitState, loads
from shipmate.store.base import KeyValue, Op, Store
from shipmate.web.dashboard.access import ACL_PREFIX, decode_grants

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


def _json(kv: KeyValue) -> Any:
    try:
        return json.loads(kv.value)
    except ValueError:
        return None


def decode_apps(kvs: list[KeyValue]) -> dict[str, AppInfo]:
    """The apps among the records under ``/shipmate/apps/`` (releases are not decoded)."""
    meta: dict[str, dict[str, Any]] = {}
    current: dict[str, int] = {}
    formation: dict[str, dict[str, int]] = {}
    for kv in kvs:
        app, _, part = kv.key.removeprefix(APPS).partition("/")
        if part not in ("meta", "current", "formation"):
            continue
        data = _json(kv)
        if not isinstance(data, dict):
            continue
        if part == "meta":
            meta[app] = data
        elif part == "current" and isinstance(data.get("version"), int):
            current[app] = data["version"]
        elif part == "formation":
            formation[app] = {str(k): v for k, v in data.items() if isinstance(v, int)}
    return {name: AppInfo(name, bool(m.get("locked")), float(m.get("created", 0)),
                          current.get(name, 0), formation.get(name, {"web": 1}))
            for name, m in sorted(meta.items())}


def decode_fleet(kvs: list[KeyValue]) -> tuple[dict[str, Machine], tuple[str, ...],
                                               dict[str, str], dict[str, tuple[str, ...]],
                                               tuple[UnitState, ...]]:
    """Machines, unit names, desired states, placements and reported states (unit texts
    are not parsed: the pages show names and states)."""
    machines: dict[str, Machine] = {}
    units: list[str] = []
    desired: dict[str, str] = {}
    placements: dict[str, tuple[str, ...]] = {}
    states: list[UnitState] = []
    for kv in kvs:
        key = kv.key
        with contextlib.suppress(ValueError, KeyError, TypeError, ValidationError):
            if key.startswith(reg.UNITS):
                units.append(key[len(reg.UNITS):])
            elif key.startswith(reg.DESIRED):
                desired[key[len(reg.DESIRED):]] = str(loads(kv.value)["state"])
            elif key.startswith(reg.PLACEMENTS):
                placements[key[len(reg.PLACEMENTS):]] = Placement.from_json(
                    loads(kv.value)).machines
            elif key.startswith(reg.MACHINES):
                machines[key[len(reg.MACHINES):]] = Machine.from_json(loads(kv.value))
            elif key.startswith(reg.STATES):
                states.append(UnitState.from_json(loads(kv.value)))
    return machines, tuple(units), desired, placements, tuple(states)


async def read_platform(store: Store) -> Platform:
    """Everything the overview and the machines page show, in one transaction."""
    res = await store.txn([], [
        Op.get(APPS, prefix=True), Op.get(reg.PREFIX, prefix=True),
        Op.get(route_keys.ENDPOINTS_PREFIX, prefix=True),
        Op.get(route_keys.GLOBAL_DOMAIN_KEY), Op.get(ACL_PREFIX, prefix=True)])
    apps, fleet, endpoints, glob, acl = (list(r) for r in res.responses)
    machines, units, desired, placements, states = decode_fleet(fleet)
    routes = route_keys.decode([(kv.key, kv.value) for kv in [*endpoints, *glob]])
    return Platform(res.revision, decode_apps(apps), machines, units, desired, placements,
                    states, routes.endpoints, routes.global_domain, decode_grants(acl))


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
