"""Placement: units + machines + current placements -> actions (pure, deterministic).

fleet's engine reconciler, with reservations. :func:`plan` does one whole pass;
:class:`Planner` keeps the state between passes and redoes only what a change touches (a
machine that dies costs the re-placement of its units, not a pass over every unit). Both
follow the same rules and reach the same placements:

1. *Unschedule* placed units that should not stay: target state inactive, unit destroyed,
   machine gone, or no longer able to run there (``MachineID``, ``MachineMetadata``,
   ``MachineOf`` peer gone, a ``Conflicts`` match in either direction, or replaced by a unit
   whose ``Replaces`` matches it).
2. ``Global`` units go on every machine matching their ``MachineMetadata`` where their
   reservation fits; each machine is a separate action. They do not count as load and take
   no part in conflicts, but what they reserve counts.
3. *Schedule* the rest (target loaded or launched), in name order, on the machine with the
   fewest units, ties broken by machine ID (fleet's ``leastLoadedScheduler``), among those
   where fleet's rules allow it and its reservation (``ReserveMemory=``, ``ReserveCPU=``)
   fits beside the reservations already placed there. Followers (``MachineOf``) go where all
   their peers are and wait while a peer is unplaced.

Reservations are checked when a unit is placed; a placed unit is never moved for them (a
machine that later reports less keeps what it has, and takes nothing new until there is
room). Units that fit nowhere stay waiting (:attr:`Plan.waiting`, with the reason, e.g.
``needs 2 GiB memory; the largest free is 1 GiB on m2``) until something changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Mapping, Sequence

from shipmate.scheduler.cluster import NOTHING, Cluster, Need, need_of, room_reason
from shipmate.scheduler.model import DesiredState, Machine
from shipmate.spec.unitreqs import Requirements


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


def plan(
    units: Mapping[str, Requirements],
    desired: Mapping[str, DesiredState],
    machines: Sequence[Machine],
    placements: Mapping[str, Sequence[str]],
) -> Plan:
    """Compute the actions that take ``placements`` to where fleet's rules want them."""
    planner = Planner.load(units, desired, machines, placements)
    actions, waiting = planner.replan()
    return Plan(actions, planner.placements(), waiting)


class Planner:
    """The scheduler's model between passes. Tell it what changed (:meth:`set_machine`,
    :meth:`remove_machine`, :meth:`set_unit`, :meth:`remove_unit`, :meth:`set_desired`),
    then :meth:`replan` returns the actions since the last pass."""

    def __init__(self) -> None:
        self.cluster = Cluster()
        self.desired: dict[str, DesiredState] = {}
        self.waiting: dict[str, str] = {}  # non-global units
        self._globals: set[str] = set()
        self._missing: dict[str, set[str]] = {}  # global unit -> matching machines lacking room
        self._actions: list[Action] = []
        self._pending: set[str] = set()  # units to (re)consider for scheduling
        self._touched: set[str] = set()  # machines whose units are re-checked against rules
        self._dirty_globals: set[str] = set()  # globals to redo on every machine
        self._dirty_machines: set[str] = set()  # machines to redo every global on
        self._room_cache: dict[tuple[object, ...], tuple[int, str | None]] = {}

    @classmethod
    def load(cls, units: Mapping[str, Requirements], desired: Mapping[str, DesiredState],
             machines: Sequence[Machine], placements: Mapping[str, Sequence[str]]) -> Planner:
        """A planner holding ``placements``, minus what plainly cannot stay (unscheduled by
        the first :meth:`replan`), with everything due for checking."""
        planner = cls()
        for machine in sorted(machines, key=lambda m: m.id):
            planner.set_machine(machine)
        for name in sorted(units):
            planner.set_unit(name, units[name])
        planner.desired = dict(desired)
        for name in sorted(placements):
            planner._take_in(name, sorted(placements[name]))
        planner._touched = set(planner.cluster.machines)
        return planner

    def _take_in(self, name: str, machines: list[str]) -> None:
        c = self.cluster
        reqs = c.units.get(name)
        for i, machine in enumerate(machines):
            reason = None
            if reqs is None:
                reason = "unit destroyed"
            elif not self.active(name):
                reason = "target state inactive"
            elif machine not in c.machines:
                reason = f"machine {machine} went away"
            elif reqs.global_ and not c.metadata_ok(reqs, machine):
                reason = "machine metadata does not match"
            elif i > 0 and not reqs.global_:
                reason = "placed on more than one machine"
            if reason:
                self._actions.append(Unschedule(name, machine, reason))
            elif reqs is not None and reqs.global_:
                c.place_global(name, machine)
            else:
                c.place(name, machine)

    # --- what changed ------------------------------------------------------------------------

    def active(self, name: str) -> bool:
        """The unit exists, is no template, and its target is loaded or launched."""
        return (name in self.cluster.units and "@." not in name
                and self.desired.get(name, "inactive") != "inactive")

    def set_machine(self, machine: Machine) -> None:
        """A machine joined or its record changed."""
        c = self.cluster
        old = c.machines.get(machine.id)
        if old == machine:
            return
        if old is None:
            c.add_machine(machine)
        else:
            c.update_machine(machine)
            self._touched.add(machine.id)
        self._dirty_machines.add(machine.id)

    def remove_machine(self, mid: str) -> None:
        """A machine went away: its units are re-placed at the next :meth:`replan`."""
        c = self.cluster
        if mid not in c.machines:
            return
        for unit in sorted(c.on[mid]):
            c.remove(unit)
            self._actions.append(Unschedule(unit, mid, f"machine {mid} went away"))
            self._pending.add(unit)
        for unit in sorted(c.globals_on[mid]):
            c.remove_global(unit, mid)
            self._actions.append(Unschedule(unit, mid, f"machine {mid} went away"))
        for missing in self._missing.values():
            missing.discard(mid)
        c.drop_machine(mid)
        self._touched.discard(mid)
        self._dirty_machines.discard(mid)

    def set_unit(self, name: str, reqs: Requirements) -> None:
        """A unit was submitted or its requirements changed."""
        c = self.cluster
        old = c.units.get(name)
        if old == reqs:
            return
        if old is None:
            c.units[name] = reqs
        elif old.global_ != reqs.global_:
            self._take_off(name, "requirements changed")
            self._globals.discard(name)
            self._missing.pop(name, None)
            c.units[name] = reqs
        else:
            c.set_requirements(name, reqs)
            if name in c.where:
                self._touched.add(c.where[name])
        if reqs.global_:
            self._globals.add(name)
            self._dirty_globals.add(name)
        else:
            self._pending.add(name)

    def remove_unit(self, name: str) -> None:
        """A unit was destroyed."""
        if name not in self.cluster.units:
            return
        self._take_off(name, "unit destroyed")
        del self.cluster.units[name]
        self._globals.discard(name)
        self._missing.pop(name, None)
        self.waiting.pop(name, None)

    def set_desired(self, name: str, state: DesiredState | None) -> None:
        """A unit's target state changed (None: its record is gone)."""
        was = self.active(name)
        if state is None:
            self.desired.pop(name, None)
        else:
            self.desired[name] = state
        if self.active(name) == was:
            return
        if was:
            self._take_off(name, "target state inactive")
            self.waiting.pop(name, None)
            self._missing.pop(name, None)
        elif name in self._globals:
            self._dirty_globals.add(name)
        else:
            self._pending.add(name)

    def _take_off(self, name: str, reason: str) -> None:
        c = self.cluster
        if name in c.where:
            machine = c.remove(name)
            self._actions.append(Unschedule(name, machine, reason))
            self._touched.add(machine)
            self._dirty_machines.add(machine)
        for machine in sorted(c.global_where.get(name, ())):
            c.remove_global(name, machine)
            self._actions.append(Unschedule(name, machine, reason))
            self._dirty_machines.add(machine)

    # --- the pass ----------------------------------------------------------------------------

    def replan(self) -> tuple[tuple[Action, ...], dict[str, str]]:
        """Carry out the rules over what changed: the actions since the last pass, and every
        unit left waiting with the reason."""
        self._place_globals(self._dirty_globals, self._dirty_machines)
        freed = self._unschedule_unable()
        self._place_globals(set(), freed)
        self._schedule()
        actions, self._actions = tuple(self._actions), []
        self._touched, self._dirty_globals, self._dirty_machines = set(), set(), set()
        waiting = dict(self.waiting)
        for name in sorted(self._missing):
            if self._missing[name]:
                waiting[name] = self._global_reason(name)
        return actions, dict(sorted(waiting.items()))

    def placement(self, name: str) -> tuple[str, ...]:
        """Where ``name`` is placed now (every machine, for a global unit)."""
        c = self.cluster
        if name in c.where:
            return (c.where[name],)
        return tuple(sorted(c.global_where.get(name, ())))

    def placements(self) -> dict[str, tuple[str, ...]]:
        """Every placement, by unit name."""
        names = set(self.cluster.where) | set(self.cluster.global_where)
        return {name: self.placement(name) for name in sorted(names)}

    def _place_globals(self, units: set[str], machines: set[str]) -> None:
        c = self.cluster
        every = sorted(c.machines)
        for name in sorted(self._globals):
            for machine in every if name in units else sorted(machines & set(c.machines)):
                self._global_on(name, machine)

    def _global_on(self, name: str, machine: str) -> None:
        c = self.cluster
        reqs, missing = c.units[name], self._missing.setdefault(name, set())
        want = self.active(name) and c.metadata_ok(reqs, machine)
        there = name in c.globals_on[machine]
        missing.discard(machine)
        if there and not want:
            c.remove_global(name, machine)
            reason = "machine metadata does not match" if self.active(name) else (
                "target state inactive")
            self._actions.append(Unschedule(name, machine, reason))
        elif want and not there:
            if c.fits(need_of(reqs), machine):
                c.place_global(name, machine)
                self._actions.append(Schedule(name, machine, "global unit"))
            else:
                missing.add(machine)

    def _global_reason(self, name: str) -> str:
        missing = sorted(self._missing[name])
        room = room_reason(self.cluster, need_of(self.cluster.units[name]), missing)
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5
                                          else "")
        return f"not on {shown}: {room}"

    def _unschedule_unable(self) -> set[str]:
        """Unschedule placed units unable to run where they are, machine by machine, until
        nothing changes (a peer leaving can make its followers unable too). Returns the
        machines something left."""
        c = self.cluster
        freed: set[str] = set()
        for machine in sorted(self._touched & set(c.machines)):
            changed = True
            while changed:
                changed = False
                for name in sorted(c.on[machine]):
                    why = c.blocker(name, machine)
                    if why is not None:
                        c.remove(name)
                        self._actions.append(
                            Unschedule(name, machine, f"unable to run on {machine}: {why}"))
                        self._pending.add(name)
                        freed.add(machine)
                        changed = True
        return freed

    def _schedule(self) -> None:
        c = self.cluster
        candidates = self._pending | set(self.waiting)
        self._pending = set()
        self.waiting = {}
        pending = sorted(n for n in candidates if self.active(n)
                         and not c.units[n].global_ and n not in c.where)
        while pending:
            deferred: list[str] = []
            progress = False
            queued = set(pending)
            for name in pending:
                if name in c.where:
                    continue
                outcome = self._decide(name)
                if isinstance(outcome, str):
                    self.waiting[name] = outcome
                    if any(p in queued and p not in c.where for p in c.units[name].machine_of):
                        deferred.append(name)
                    continue
                machine, victims = outcome
                for victim in victims:
                    c.remove(victim)
                    self._actions.append(Unschedule(victim, machine, f"replaced by {name}"))
                    deferred.append(victim)
                c.place(name, machine)
                self.waiting.pop(name, None)
                self._actions.append(Schedule(name, machine,
                                              f"target state {self.desired[name]}"))
                progress = True
            pending = sorted(set(deferred) - set(c.where)) if progress else []
        for name in [n for n in self.waiting if n in c.where]:
            del self.waiting[name]

    def _hosts(self, reqs: Requirements) -> list[str] | None:
        """The only machines a pinned unit or a follower may go on (None: any)."""
        c = self.cluster
        if reqs.machine_id is not None:
            return [reqs.machine_id] if reqs.machine_id in c.machines else []
        if not reqs.machine_of:
            return None
        hosts: set[str] | None = None
        for peer in reqs.machine_of:
            found = {c.where[peer]} if peer in c.where else set(c.global_where.get(peer, ()))
            hosts = found if hosts is None else hosts & found
        return sorted(hosts or (), key=lambda m: (c.load(m), m))

    def _order(self, reqs: Requirements, need: Need) -> Generator[str, None, None]:
        c = self.cluster
        hosts = self._hosts(reqs)
        if hosts is not None:
            yield from hosts
        elif reqs.replaces:  # it may fit only once its victims leave: every machine is asked
            yield from c.candidates(NOTHING)
        else:
            yield from c.candidates(need, reqs.metadata)

    def _decide(self, name: str) -> tuple[str, list[str]] | str:
        """The machine for ``name`` and the units it displaces there, or why it must wait."""
        c = self.cluster
        reqs = c.units[name]
        need = need_of(reqs)
        fallback: tuple[str, list[str]] | None = None
        last_reason, seen, short = "", False, False
        order = self._order(reqs, need)
        try:
            for machine in order:
                seen = True
                why = c.blocker(name, machine)
                if why is not None:
                    last_reason = why
                    continue
                victims = c.victims(name, machine)
                if not c.fits(need, machine, victims):
                    short = True
                    continue
                if not victims:
                    return machine, []
                fallback = fallback or (machine, victims)
        finally:
            order.close()  # the indexes take back what the walk took out
        if fallback is not None:
            return fallback
        return self._why_waiting(reqs, need, seen, short, last_reason)

    def _why_waiting(self, reqs: Requirements, need: Need, seen: bool, short: bool,
                     last_reason: str) -> str:
        c = self.cluster
        hosts = self._hosts(reqs)
        if hosts == [] or not c.machines:
            if reqs.machine_id is not None:
                return f"machine {reqs.machine_id} is not in the cluster"
            if reqs.machine_of:
                return "waiting for MachineOf " + ", ".join(reqs.machine_of)
            return "no machines in the cluster"
        if need != NOTHING and (short or not seen):
            room = room_reason(c, need, hosts) if hosts is not None else self._room(reqs, need)
            if room is not None:
                return room
        return f"no machine can run it (last: {last_reason or 'no room'})"

    def _room(self, reqs: Requirements, need: Need) -> str | None:
        """:func:`room_reason` over the machines whose metadata suits ``reqs``, cached while
        nothing changes (a full cluster leaves many units waiting for the same reason)."""
        c = self.cluster
        key = (reqs.metadata, need)
        cached = self._room_cache.get(key)
        if cached is not None and cached[0] == c.version:
            return cached[1]
        suits = (m for m in sorted(c.machines) if c.metadata_ok(reqs, m))
        reason = room_reason(c, need, suits)
        self._room_cache = {k: v for k, v in self._room_cache.items() if v[0] == c.version}
        self._room_cache[key] = (c.version, reason)
        return reason
