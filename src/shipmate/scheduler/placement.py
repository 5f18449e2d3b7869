"""Placement: units + machines + current placements -> actions (pure, deterministic).

fleet's engine reconciler, in one function (:func:`plan`):

1. *Unschedule* placed units that should not stay: target state inactive, unit destroyed,
   machine gone, or no longer able to run there (``MachineID``, ``MachineMetadata``,
   ``MachineOf`` peer gone, a ``Conflicts`` match in either direction, or replaced by a unit
   whose ``Replaces`` matches it).
2. *Schedule* the rest (target loaded or launched) on the able machine with the fewest units,
   ties broken by machine ID (fleet's ``leastLoadedScheduler``). Followers (``MachineOf``)
   go where all their peers are and wait while a peer is unplaced.
3. ``Global`` units go on every machine matching their ``MachineMetadata``; each machine is a
   separate action. They do not count as load and take no part in conflicts.

Units that fit nowhere stay waiting (reported in :attr:`Plan.waiting`) until something changes.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Mapping, Sequence

from shipmate.scheduler.model import DesiredState, Machine
from shipmate.spec.unitreqs import Requirements, glob_match


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Place ``unit`` on ``machine``."""

    unit: str
    machine: str
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class Unschedule:
    """Take ``unit`` off ``machine``."""

    unit: str
    machine: str
    reason: str = ""


Action = Schedule | Unschedule


@dataclasses.dataclass(frozen=True)
class Plan:
    """The actions in order, the placements they lead to, and units left waiting (why)."""

    actions: tuple[Action, ...]
    placements: dict[str, tuple[str, ...]]
    waiting: dict[str, str]


class _Cluster:
    """Mutable working state of one planning pass."""

    def __init__(self, units: Mapping[str, Requirements], machines: Sequence[Machine]) -> None:
        self.units = units
        self.machines = {m.id: m for m in machines}
        self.meta = {m.id: m.metadata_dict for m in machines}
        self.on: dict[str, set[str]] = {m: set() for m in self.machines}  # non-global units
        self.where: dict[str, str] = {}
        self.globals_on: dict[str, set[str]] = {m: set() for m in self.machines}
        self.by_load = sorted((0, m) for m in self.machines)

    def load(self, machine: str) -> int:
        return len(self.on[machine])

    def _move(self, machine: str, delta: int) -> None:
        old = (self.load(machine), machine)
        del self.by_load[bisect.bisect_left(self.by_load, old)]
        bisect.insort(self.by_load, (old[0] + delta, machine))

    def place(self, unit: str, machine: str) -> None:
        self._move(machine, +1)
        self.on[machine].add(unit)
        self.where[unit] = machine

    def remove(self, unit: str) -> None:
        machine = self.where.pop(unit)
        self._move(machine, -1)
        self.on[machine].discard(unit)

    def metadata_ok(self, reqs: Requirements, machine: str) -> bool:
        meta = self.meta[machine]
        return all(meta.get(key) in values for key, values in reqs.metadata)

    def blocker(self, name: str, machine: str) -> str | None:
        """Why ``name`` cannot run on ``machine`` given what is there, or None."""
        reqs = self.units[name]
        if reqs.machine_id is not None and reqs.machine_id != machine:
            return f"requires machine {reqs.machine_id}"
        if not self.metadata_ok(reqs, machine):
            return "machine metadata does not match"
        for peer in reqs.machine_of:
            if peer not in self.on[machine] and peer not in self.globals_on[machine]:
                return f"MachineOf {peer} is not on this machine"
        for other in self.on[machine]:
            if other == name:
                continue
            if _conflicts(reqs, name, self.units[other], other):
                return f"conflicts with {other}"
            if _replaces(self.units[other], other, reqs, name):
                return f"replaced by {other}"
        return None

    def victims(self, name: str, machine: str) -> list[str]:
        """Units on ``machine`` that ``name`` replaces (they move if it goes there)."""
        reqs = self.units[name]
        return sorted(o for o in self.on[machine]
                      if o != name and _replaces(reqs, name, self.units[o], o))


def _conflicts(a: Requirements, a_name: str, b: Requirements, b_name: str) -> bool:
    return any(glob_match(p, b_name) for p in a.conflicts) or any(
        glob_match(p, a_name) for p in b.conflicts)


def _replaces(a: Requirements, a_name: str, b: Requirements, b_name: str) -> bool:
    """``a`` replaces ``b`` (and not the other way round: circular replaces are ignored)."""
    forward = any(glob_match(p, b_name) for p in a.replaces)
    backward = any(glob_match(p, a_name) for p in b.replaces)
    return forward and not backward


def _active(name: str, units: Mapping[str, Requirements],
            desired: Mapping[str, DesiredState]) -> bool:
    return name in units and desired.get(name, "inactive") != "inactive" and "@." not in name


def plan(
    units: Mapping[str, Requirements],
    desired: Mapping[str, DesiredState],
    machines: Sequence[Machine],
    placements: Mapping[str, Sequence[str]],
) -> Plan:
    """Compute the actions that take ``placements`` to where fleet's rules want them."""
    cluster = _Cluster(units, machines)
    actions: list[Action] = []
    _load_current(cluster, units, desired, placements, actions)
    # Globals first: they take no load and no conflicts, but followers may be MachineOf them.
    global_actions = _place_globals(cluster, units, desired, placements)
    _unschedule_unable(cluster, actions)
    waiting = _schedule(cluster, units, desired, actions)
    actions.extend(global_actions)
    result = {u: (m,) for u, m in cluster.where.items()}
    for machine, names in cluster.globals_on.items():
        for name in names:
            result[name] = (*result.get(name, ()), machine)
    return Plan(tuple(actions), {u: tuple(sorted(ms)) for u, ms in sorted(result.items())},
                waiting)


def _load_current(cluster: _Cluster, units: Mapping[str, Requirements],
                  desired: Mapping[str, DesiredState], placements: Mapping[str, Sequence[str]],
                  actions: list[Action]) -> None:
    """Take in current non-global placements, unscheduling what plainly cannot stay."""
    for name in sorted(placements):
        machines = sorted(placements[name])
        reqs = units.get(name)
        if reqs is not None and reqs.global_:
            continue  # handled by _place_globals
        for i, machine in enumerate(machines):
            reason = None
            if name not in units:
                reason = "unit destroyed"
            elif not _active(name, units, desired):
                reason = "target state inactive"
            elif machine not in cluster.machines:
                reason = f"machine {machine} went away"
            elif i > 0:
                reason = "placed on more than one machine"
            if reason:
                actions.append(Unschedule(name, machine, reason))
            else:
                cluster.place(name, machine)


def _unschedule_unable(cluster: _Cluster, actions: list[Action]) -> None:
    """Unschedule placed units unable to run where they are, until nothing changes (a peer
    leaving can make its followers unable too)."""
    changed = True
    while changed:
        changed = False
        for name in sorted(cluster.where):
            machine = cluster.where[name]
            why = cluster.blocker(name, machine)
            if why is not None:
                cluster.remove(name)
                actions.append(Unschedule(name, machine, f"unable to run on {machine}: {why}"))
                changed = True


def _schedule(cluster: _Cluster, units: Mapping[str, Requirements],
              desired: Mapping[str, DesiredState], actions: list[Action]) -> dict[str, str]:
    pending = [n for n in sorted(units)
               if _active(n, units, desired) and not units[n].global_ and n not in cluster.where]
    waiting: dict[str, str] = {}
    while pending:
        deferred: list[str] = []
        progress = False
        for name in pending:
            if name in cluster.where:
                continue
            outcome = _decide(cluster, name)
            if isinstance(outcome, str):
                waiting[name] = outcome
                if _peer_pending(cluster, name, pending):
                    deferred.append(name)
                continue
            machine, victims = outcome
            for victim in victims:
                cluster.remove(victim)
                actions.append(Unschedule(victim, machine, f"replaced by {name}"))
                deferred.append(victim)
            cluster.place(name, machine)
            waiting.pop(name, None)
            actions.append(Schedule(name, machine, f"target state {desired[name]}"))
            progress = True
        pending = sorted(set(deferred) - set(cluster.where)) if progress else []
    for name in list(waiting):
        if name in cluster.where:
            del waiting[name]
    return waiting


def _peer_pending(cluster: _Cluster, name: str, pending: list[str]) -> bool:
    return any(p in pending and p not in cluster.where for p in cluster.units[name].machine_of)


def _candidates(cluster: _Cluster, name: str) -> list[str]:
    reqs = cluster.units[name]
    if reqs.machine_id is not None:
        return [reqs.machine_id] if reqs.machine_id in cluster.machines else []
    if not reqs.machine_of:
        return [m for _, m in cluster.by_load]
    hosts: set[str] | None = None
    for peer in reqs.machine_of:
        if peer in cluster.where:
            found = {cluster.where[peer]}
        else:
            found = {m for m, names in cluster.globals_on.items() if peer in names}
        hosts = found if hosts is None else hosts & found
    return sorted(hosts or ())


def _decide(cluster: _Cluster, name: str) -> tuple[str, list[str]] | str:
    """The machine for ``name`` and the units it displaces there, or why it must wait."""
    candidates = sorted(_candidates(cluster, name), key=lambda m: (cluster.load(m), m))
    if not candidates:
        reqs = cluster.units[name]
        if reqs.machine_id is not None:
            return f"machine {reqs.machine_id} is not in the cluster"
        if reqs.machine_of:
            return "waiting for MachineOf " + ", ".join(reqs.machine_of)
        return "no machines in the cluster"
    fallback: tuple[str, list[str]] | None = None
    last_reason = ""
    for machine in candidates:
        why = cluster.blocker(name, machine)
        if why is not None:
            last_reason = why
            continue
        victims = cluster.victims(name, machine)
        if not victims:
            return machine, []
        fallback = fallback or (machine, victims)
    if fallback is not None:
        return fallback
    return f"no machine can run it (last: {last_reason})"


def _place_globals(cluster: _Cluster, units: Mapping[str, Requirements],
                   desired: Mapping[str, DesiredState],
                   placements: Mapping[str, Sequence[str]]) -> list[Action]:
    actions: list[Action] = []
    for name in sorted(units):
        reqs = units[name]
        if not reqs.global_:
            continue
        current = set(placements.get(name, ()))
        target: set[str] = set()
        if _active(name, units, desired):
            target = {m for m in cluster.machines if cluster.metadata_ok(reqs, m)}
        for machine in sorted(current - target):
            why = "target state inactive" if not _active(name, units, desired) else (
                f"machine {machine} went away" if machine not in cluster.machines
                else "machine metadata does not match")
            actions.append(Unschedule(name, machine, why))
        for machine in sorted(target - current):
            actions.append(Schedule(name, machine, "global unit"))
        for machine in target:
            cluster.globals_on[machine].add(name)
    return actions
