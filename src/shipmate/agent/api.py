"""The fleet routes of the daemon's HTTP API (``shipmate fleet`` talks to these).

Wiring (done by the daemon's API): ``add_fleet_routes(app, store, agent)`` with the
:class:`~shipmate.store.base.Store` the registry is built over and this machine's
:class:`~shipmate.agent.agent.Agent` (optional: without it, status and journal come from what
agents published to the store).

Routes (JSON in, JSON out; journal streams text lines)::

    GET  /v1/fleet/machines                      list-machines
    GET  /v1/fleet/units                         list-units (reported unit states)
    GET  /v1/fleet/unit-files                    list-unit-files
    POST /v1/fleet/submit   {"units": [{"name", "text"}], "replace": false}
    POST /v1/fleet/desired  {"units": [...], "state": "inactive|loaded|launched",
                             "command": "load|stop|..." (for the audit trail only)}
    POST /v1/fleet/destroy  {"units": [...]}
    GET  /v1/fleet/cat?unit=NAME
    GET  /v1/fleet/status?unit=NAME
    GET  /v1/fleet/journal?unit=NAME&lines=N&follow=1

``fleet journal`` and ``fleet status`` for a unit on another machine read what that machine's
agent publishes to the store (:mod:`shipmate.agent.publish`): the last 50 lines and the
status, refreshed every 2 s; ``-f`` polls it. On the unit's own machine they read the journal
file (or the container's logs) directly.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from shipmate.agent.publish import new_lines, read_published
from shipmate.errors import NotFoundError, ValidationError
from shipmate.httpapi.server import json_body, stream_lines
from shipmate.scheduler.model import Machine
from shipmate.scheduler.registry import Registry, Snapshot
from shipmate.spec.unitfile import parse
from shipmate.spec.unitname import parse_unit_name
from shipmate.spec.unitredact import environment_values, redact_environment, scrub
from shipmate.spec.units import parse_unit
from shipmate.store.base import Store

if TYPE_CHECKING:
    from shipmate.agent.agent import Agent

FOLLOW_POLL = 1.0
MAX_JOURNAL_LINES = 10_000


@dataclasses.dataclass(frozen=True)
class _Fleet:
    store: Store
    agent: Agent | None


_FLEET: web.AppKey[_Fleet] = web.AppKey("fleet")


def _registry(request: web.Request) -> Registry:
    return Registry(request.app[_FLEET].store)


def _agent(request: web.Request) -> Agent | None:
    return request.app[_FLEET].agent


def add_fleet_routes(app: web.Application, store: Store, agent: Agent | None = None) -> None:
    """Add the ``/v1/fleet/...`` routes to the daemon's API ``app``."""
    app[_FLEET] = _Fleet(store, agent)
    r = app.router
    r.add_get("/v1/fleet/machines", list_machines)
    r.add_get("/v1/fleet/units", list_units)
    r.add_get("/v1/fleet/unit-files", list_unit_files)
    r.add_post("/v1/fleet/submit", submit)
    r.add_post("/v1/fleet/desired", set_desired)
    r.add_post("/v1/fleet/destroy", destroy)
    r.add_get("/v1/fleet/cat", cat)
    r.add_get("/v1/fleet/status", status)
    r.add_get("/v1/fleet/journal", journal)


def _machine_json(m: Machine) -> dict[str, Any]:
    return {"id": m.id, "public_ip": m.public_ip, "metadata": m.metadata_dict,
            "resources": {"cpus": m.cpus, "memory": m.memory}}


async def list_machines(request: web.Request) -> web.Response:
    """Live machines."""
    machines = await _registry(request).machines()
    return web.json_response([_machine_json(m) for _, m in sorted(machines.items())])


async def list_units(request: web.Request) -> web.Response:
    """Unit states as agents report them, with each machine's public IP; then the units the
    scheduler could place nowhere (sub state ``waiting``, with the reason)."""
    snap = await _registry(request).snapshot()
    rows = []
    for st in sorted(snap.states, key=lambda s: (s.unit, s.machine)):
        m = snap.machines.get(st.machine)
        rows.append({"unit": st.unit, "machine": st.machine,
                     "public_ip": m.public_ip if m else "", "load": st.load_state,
                     "active": st.active_state, "sub": st.sub_state, "hash": st.hash})
    reported = {st.unit for st in snap.states}
    for name, reason in sorted(snap.waiting.items()):
        if name in snap.units and name not in reported:
            rows.append({"unit": name, "machine": "", "public_ip": "", "load": "-",
                         "active": "inactive", "sub": "waiting",
                         "hash": snap.units[name].hash, "reason": reason})
    rows.sort(key=lambda r: (r["unit"], r["machine"]))
    return web.json_response(rows)


def unit_file_rows(snap: Snapshot) -> list[dict[str, Any]]:
    """list-unit-files rows: target state, current state (from the agents' reports), target
    machines."""
    reported = {(s.unit, s.machine): s for s in snap.states}
    rows = []
    for name, rec in sorted(snap.units.items()):
        placement = snap.placements.get(name)
        machines = list(placement.machines) if placement else []
        state = "inactive"
        for mid in machines:
            st = reported.get((name, mid))
            if st is not None:
                state = "loaded" if st.active_state == "inactive" else "launched"
        rows.append({
            "unit": name, "hash": rec.hash, "dstate": snap.desired.get(name, "inactive"),
            "state": state, "global": rec.requirements.global_, "machines": [
                {"id": mid, "public_ip": snap.machines[mid].public_ip
                 if mid in snap.machines else ""} for mid in machines],
            "desc": _description(rec.text), "reason": snap.waiting.get(name, ""),
        })
    return rows


def _description(text: str) -> str:
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Unit]" and line.startswith("Description="):
            return line.partition("=")[2].strip()
    return ""


async def list_unit_files(request: web.Request) -> web.Response:
    """Every unit file with its target and current state and target machine(s)."""
    return web.json_response(unit_file_rows(await _registry(request).snapshot()))


def _names(body: dict[str, Any]) -> list[str]:
    units = body.get("units")
    if not isinstance(units, list) or not all(isinstance(u, str) for u in units):
        raise ValidationError('expected {"units": ["name.service", ...]}')
    return [parse_unit_name(u).full for u in units]


async def submit(request: web.Request) -> web.Response:
    """Submit unit files; every unit is validated before any is stored."""
    body = await json_body(request)
    units = body.get("units")
    if not isinstance(units, list):
        raise ValidationError('expected {"units": [{"name": ..., "text": ...}]}')
    reg = _registry(request)
    todo: list[tuple[str, str | None]] = []
    for item in units:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ValidationError("each unit needs a name (and usually a text)")
        text = item.get("text")
        todo.append((item["name"], text if isinstance(text, str) else None))
    for name, text in todo:  # refuse the whole batch before storing anything
        if text is not None:
            parse_unit(name, text)
        else:
            parse_unit_name(name)
    replace = body.get("replace") is True  # new content in place (apply --via-daemon)
    out = []
    for name, text in todo:
        record = await (reg.replace(name, text) if replace and text is not None
                        else reg.submit(name, text))
        out.append({"unit": record.name, "hash": record.hash})
    return web.json_response(out)


async def set_desired(request: web.Request) -> web.Response:
    """load / start / stop / unload: set the target state of units."""
    body = await json_body(request)
    names, state = _names(body), body.get("state")
    if not isinstance(state, str):
        raise ValidationError("missing state (inactive, loaded or launched)")
    reg = _registry(request)
    for name in names:
        await reg.set_desired(name, state)
    return web.json_response([{"unit": n, "dstate": state} for n in names])


async def destroy(request: web.Request) -> web.Response:
    """Remove units entirely (their agents stop them)."""
    names = _names(await json_body(request))
    reg = _registry(request)
    return web.json_response([{"unit": n, "destroyed": await reg.destroy(n)} for n in names])


async def cat(request: web.Request) -> web.Response:
    """The unit file as submitted."""
    name = parse_unit_name(request.query.get("unit", "")).full
    rec = await _registry(request).unit(name)
    if rec is None:
        raise NotFoundError(f"Unit {name} not found", hint="list-unit-files shows the units")
    # Environment= values are often secrets: shown by name only (the hash is the real one's).
    return web.json_response({"unit": name, "text": redact_environment(rec.text),
                              "hash": rec.hash})


async def status(request: web.Request) -> web.Response:
    """What each machine running the unit says about it: status and journal tail."""
    name = parse_unit_name(request.query.get("unit", "")).full
    reg = _registry(request)
    snap = await reg.snapshot()
    if name not in snap.units:
        raise NotFoundError(f"Unit {name} does not exist.",
                            hint="list-unit-files shows the units")
    agent = _agent(request)
    published = await read_published(request.app[_FLEET].store, name)
    machines = []
    for mid, rec in sorted(published.items()):
        if agent is not None and mid == agent.machine_id:
            detail = agent.local_detail(name) or rec.get("detail")
            rec = {"detail": detail, "lines": await agent.journal_lines(name, 10)}
        machines.append({"machine": mid, **rec})
    if agent is not None and not any(m["machine"] == agent.machine_id for m in machines):
        detail = agent.local_detail(name)
        if detail is not None:
            machines.append({"machine": agent.machine_id, "detail": detail,
                             "lines": await agent.journal_lines(name, 10)})
    secrets = environment_values(parse(snap.units[name].text))
    for block in machines:  # what the engine said may quote the unit's environment
        block["detail"] = _scrubbed(block.get("detail"), secrets)
    placement = snap.placements.get(name)
    return web.json_response({
        "unit": name, "dstate": snap.desired.get(name, "inactive"),
        "hash": snap.units[name].hash,
        "placed": list(placement.machines) if placement else [],
        "waiting": snap.waiting.get(name, ""),
        "states": [s.to_json() for s in snap.states if s.unit == name],
        "machines": machines,
    })


def _scrubbed(detail: Any, secrets: list[str]) -> Any:
    """A status detail with the unit's environment values cut out of its messages."""
    if not isinstance(detail, dict):
        return detail
    return {k: scrub(v, secrets) if isinstance(v, str) else v for k, v in detail.items()}


def _lines_param(request: web.Request) -> int:
    try:
        lines = int(request.query.get("lines", "10"))
    except ValueError as exc:
        raise ValidationError("lines must be a number") from exc
    return max(0, min(lines, MAX_JOURNAL_LINES))


async def journal(request: web.Request) -> web.StreamResponse:
    """The unit's output: here from the file or container, elsewhere from the store."""
    name = parse_unit_name(request.query.get("unit", "")).full
    lines = _lines_param(request)
    follow = request.query.get("follow") in ("1", "true", "yes")
    agent = _agent(request)
    if agent is not None and agent.local_detail(name) is not None:
        return await stream_lines(request, _local_journal(agent, name, lines, follow))
    store = request.app[_FLEET].store
    if not await read_published(store, name):
        reg = _registry(request)
        if await reg.unit(name) is None:
            raise NotFoundError(f"Unit {name} does not exist.")
        if not any(s.unit == name for s in await reg.unit_states()):
            raise NotFoundError(f"Unit {name} does not appear to be running.",
                                hint="list-units shows where units run")
        # loaded on a machine whose agent has not published its tail yet (every 2 s)
    return await stream_lines(request, _remote_journal(store, name, lines, follow))


async def _local_journal(agent: Any, name: str, lines: int,
                         follow: bool) -> AsyncIterator[str]:
    if agent.containers is not None and agent.containers.status(name) is not None:
        async for line in agent.containers.logs(name, lines=lines, follow=follow):
            yield line
        return
    journal_ = agent.supervisor.journal
    if not follow:
        for line in journal_.tail(name, lines):
            yield line
        return
    async for line in journal_.follow(name, lines):
        yield line


async def _remote_journal(store: Any, name: str, lines: int,
                          follow: bool) -> AsyncIterator[str]:
    published = await read_published(store, name)
    mid = sorted(published)[0] if published else None
    shown: list[str] = list(published[mid].get("lines") or []) if mid else []
    for line in shown[-lines:] if lines else []:
        yield line
    while follow:
        await asyncio.sleep(FOLLOW_POLL)
        records = await read_published(store, name)
        if mid is None and records:
            mid = sorted(records)[0]
        if mid is None:
            continue
        current = records.get(mid)
        if current is None:
            return  # the unit left that machine
        fresh = list(current.get("lines") or [])
        for line in new_lines(shown, fresh):
            yield line
        shown = fresh
