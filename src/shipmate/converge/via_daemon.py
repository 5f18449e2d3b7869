"""``apply --via-daemon``: converge a manifest through the daemon's fleet API. The I/O of it.

Each declared container becomes a ``.container`` unit (:mod:`.units`) pinned to one machine
(``[X-Fleet] MachineID=``). Unchanged units are left alone (same text, same fleet hash); a
changed one is destroyed and submitted again (the registry never changes a unit's content
in place, as fleet did not); with ``prune``, this manifest's units no longer declared are
destroyed. Units are launched in ``depends_on`` order (a unit waits until the units it
depends on are active), then the apply waits, bounded, until every unit is active with its
new hash on that machine. The agent there runs them; it never replaces a container whose
spec is unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from shipmate.clock import Clock, SystemClock
from shipmate.converge.units import (
    DeclaredUnit,
    UnitPlan,
    manifest_units,
    owner_of,
    plan_units,
    unit_prefix,
)
from shipmate.spec.manifest import Manifest

Report = Callable[[str], None]


class FleetClient(Protocol):
    """What this needs of :class:`shipmate.httpapi.client.DaemonClient`."""

    async def request(self, method: str, path: str, *, json_body: Any = None,
                      params: dict[str, str] | None = None,
                      timeout: float | None = None) -> Any:
        """One API call; decoded JSON, or the daemon's error raised."""
        ...


@dataclasses.dataclass
class DaemonApplyResult:
    """What ``apply --via-daemon`` did."""

    machine: str
    plan: UnitPlan
    units: list[DeclaredUnit]
    failures: list[str] = dataclasses.field(default_factory=list)
    launched: list[str] = dataclasses.field(default_factory=list)  # desired state changed

    @property
    def ok(self) -> bool:
        """True when every unit is active."""
        return not self.failures

    @property
    def changed(self) -> bool:
        """True when the registry was written to."""
        p = self.plan
        return bool(p.submit or p.replace or p.prune or self.launched)

    def to_json(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {"ok": self.ok, "machine": self.machine, "changed": self.changed,
                **{k: list(v) for k, v in dataclasses.asdict(self.plan).items()},
                "launched": self.launched, "failures": self.failures,
                "units": [u.name for u in self.units]}


async def daemon_machine_id(client: FleetClient) -> str:
    """The machine ID of the daemon ``client`` talks to."""
    status = await client.request("GET", "/v1/status")
    return str(status["daemon"]["machine_id"])


@dataclasses.dataclass(frozen=True)
class DaemonPlan:
    """The declared units, the registry's rows for every unit, and what to do."""

    machine: str
    units: list[DeclaredUnit]
    rows: Mapping[str, Mapping[str, Any]]
    plan: UnitPlan

    @property
    def to_launch(self) -> set[str]:
        """Units whose desired state must be set to launched."""
        p = self.plan
        return {*p.replace, *p.submit} | {n for n in p.unchanged
                                           if self.rows[n].get("dstate") != "launched"}

    @property
    def changes_anything(self) -> bool:
        """True when applying writes to the registry."""
        p = self.plan
        return bool(p.submit or p.replace or p.prune or self.to_launch)

    def lines(self) -> list[str]:
        """What applying would do, one line per unit that changes."""
        p = self.plan
        return ([f"submit and start {n}" for n in p.submit]
                + [f"replace {n} (its unit changed: destroy, submit, start)" for n in p.replace]
                + [f"start {n}" for n in sorted(self.to_launch - {*p.submit, *p.replace})]
                + [f"destroy {n} (no longer declared)" for n in p.prune]
                + [f"{n}: no longer declared, kept (apply --prune removes it)"
                   for n in p.orphans])


async def plan_via_daemon(client: FleetClient, manifest: Manifest, machine: str, *,
                          prune: bool = False) -> DaemonPlan:
    """Render the units and compare them with the registry (reads only)."""
    declared = manifest_units(manifest, machine)  # refuses an unwritable spec before any call
    rows = {r["unit"]: r for r in await client.request("GET", "/v1/fleet/unit-files")}
    owned = []
    for name in sorted(rows):  # another manifest may share the prefix (web, web-api)
        if name.startswith(unit_prefix(manifest.name)) and name.endswith(".container"):
            data = await client.request("GET", "/v1/fleet/cat", params={"unit": name})
            if owner_of(str(data.get("text", ""))) == manifest.name:
                owned.append(name)
    plan = plan_units(declared, {n: r["hash"] for n, r in rows.items()}, owned, prune=prune)
    return DaemonPlan(machine, declared, rows, plan)


async def apply_via_daemon(client: FleetClient, manifest: Manifest, machine: str, *,
                           prune: bool = False, report: Report | None = None,
                           clock: Clock | None = None, timeout: float = 120.0,
                           poll: float = 0.5) -> DaemonApplyResult:
    """Submit, start and wait for ``manifest``'s units on ``machine``."""
    say = report or (lambda _m: None)
    run = _Run(client, say, clock or SystemClock(), poll)
    dplan = await plan_via_daemon(client, manifest, machine, prune=prune)
    plan, declared = dplan.plan, dplan.units
    result = DaemonApplyResult(machine, plan, declared)
    for name in plan.orphans:
        say(f"{name}: no longer declared, kept (apply --prune removes it)")
    await run.destroy(plan.prune, "no longer declared (--prune)")
    await run.destroy(plan.replace, "its unit changed")
    texts = {u.name: u.text for u in declared}
    fresh = [*plan.replace, *plan.submit]
    if fresh:
        await client.request("POST", "/v1/fleet/submit", json_body={
            "units": [{"name": n, "text": texts[n]} for n in fresh]})
        for name in fresh:
            say(f"submit {name}")
    launch = dplan.to_launch
    deadline = run.clock.now() + timeout
    for unit in declared:
        deps = [u for u in declared if u.name in unit.depends_on]
        if deps and unit.name in launch:  # depends_on: the others are active first
            await run.wait_active(deps, machine, deadline, result)
            if not result.ok:
                return result
        if unit.name in launch:
            say(f"start {unit.name}")
            await client.request("POST", "/v1/fleet/desired",
                                 json_body={"units": [unit.name], "state": "launched"})
            result.launched.append(unit.name)
    await run.wait_active(declared, machine, deadline, result)
    return result


class _Run:
    """One apply's calls to the daemon."""

    def __init__(self, client: FleetClient, report: Report, clock: Clock, poll: float) -> None:
        self.client = client
        self.report = report
        self.clock = clock
        self.poll = poll
        self.shown: dict[str, str] = {}

    async def destroy(self, names: Sequence[str], why: str) -> None:
        if not names:
            return
        for name in names:
            self.report(f"destroy {name} ({why})")
        await self.client.request("POST", "/v1/fleet/destroy", json_body={"units": list(names)})

    async def wait_active(self, units: Sequence[DeclaredUnit], machine: str, deadline: float,
                          result: DaemonApplyResult) -> None:
        """Poll list-units until each unit is active with its hash on ``machine``; a failed
        one or the deadline ends the wait with a failure."""
        pending = {u.name: u.hash for u in units}
        while True:
            states = {r["unit"]: r for r in await self.client.request("GET", "/v1/fleet/units")
                      if r.get("machine") == machine}
            for name, want in sorted(pending.items()):
                row = states.get(name)
                current = row if row is not None and row.get("hash") == want else None
                state = f"{current['active']}/{current['sub']}" if current else "waiting"
                if self.shown.get(name) != state:
                    self.shown[name] = state
                    self.report(f"{name}: {state}" + (f" on {machine}" if current else ""))
                if current and current["active"] == "active":
                    del pending[name]
                elif current and current["active"] == "failed":
                    result.failures.append(f"{name} failed on {machine}; see: shipmate fleet "
                                           f"status {name}")
                    return
            if not pending:
                return
            if self.clock.now() >= deadline:
                result.failures += [f"{name} was not active within the time allowed (now "
                                    f"{self.shown.get(name, 'waiting')}); see: shipmate fleet "
                                    f"status {name}" for name in sorted(pending)]
                return
            await self.clock.sleep(self.poll)


__all__ = ["DaemonApplyResult", "DaemonPlan", "FleetClient", "apply_via_daemon",
           "daemon_machine_id", "plan_via_daemon"]
