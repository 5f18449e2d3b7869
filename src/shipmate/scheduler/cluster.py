"""The planner's working state: machines, what is placed where, what is reserved (pure).

:class:`Cluster` answers the questions a placement decision asks, each without a pass over
every unit or every machine:

- the machines in fleet's order, fewest (non-global) units first, ties by machine ID
  (:attr:`Cluster.by_load`, a sorted list kept up to date on every change);
- the same order restricted to the machines where a reservation fits
  (:meth:`Cluster.ordered`): one sorted list per distinct reservation, built the first time a
  unit asks and then kept up to date, so a nearly full cluster is not rescanned for every unit;
- whether a unit may run on a machine by fleet's rules (:meth:`Cluster.blocker`), looking only
  at the units there that carry ``Conflicts=``/``Replaces=`` patterns unless the unit has some.

Reservations are kept in whole bytes and thousandths of a CPU, so sums are exact.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from shipmate.scheduler.model import Machine
from shipmate.spec.unitreqs import Requirements, any_match

#: A reservation, or free room: (bytes of memory, thousandths of a CPU).
Need = tuple[int, int]
NOTHING: Need = (0, 0)
#: Distinct reservations with an index of their own; past it, the indexes are rebuilt lazily.
MAX_CLASSES = 64


def need_of(reqs: Requirements) -> Need:
    """What ``reqs`` reserves, in the cluster's units."""
    return reqs.reserve_memory, round(reqs.reserve_cpus * 1000)


def capacity_of(machine: Machine) -> Need:
    """What ``machine`` offers, in the cluster's units."""
    return machine.memory, round(machine.cpus * 1000)


def conflicts(a: Requirements, a_name: str, b: Requirements, b_name: str) -> bool:
    """``a`` and ``b`` may not share a machine (a ``Conflicts`` match either way)."""
    return any_match(a.conflicts, b_name) or any_match(b.conflicts, a_name)


def replaces(a: Requirements, a_name: str, b: Requirements, b_name: str) -> bool:
    """``a`` replaces ``b`` (and not the other way round: circular replaces are ignored)."""
    return any_match(a.replaces, b_name) and not any_match(b.replaces, a_name)


class Cluster:
    """Machines, placements and reservations, with the indexes placement decisions use."""

    def __init__(self) -> None:
        self.units: dict[str, Requirements] = {}
        self.machines: dict[str, Machine] = {}
        self.meta: dict[str, dict[str, str]] = {}
        self.capacity: dict[str, Need] = {}
        self.used: dict[str, Need] = {}
        self.on: dict[str, set[str]] = {}  # non-global units per machine
        self.patterned: dict[str, set[str]] = {}  # those of them with Conflicts/Replaces
        self.where: dict[str, str] = {}
        self.globals_on: dict[str, set[str]] = {}
        self.global_where: dict[str, set[str]] = {}
        self.by_load: list[tuple[int, str]] = []
        self._classes: dict[Need, list[tuple[int, str]]] = {}
        self.version = 0  # bumped on every change (what a cached answer is checked against)

    # --- questions ---------------------------------------------------------------------------

    def load(self, machine: str) -> int:
        """Non-global units on ``machine``."""
        return len(self.on[machine])

    def free(self, machine: str) -> Need:
        """Room left on ``machine`` (negative when it reports less than is placed there)."""
        cap, used = self.capacity[machine], self.used[machine]
        return cap[0] - used[0], cap[1] - used[1]

    def fits(self, need: Need, machine: str, freed: Iterable[str] = ()) -> bool:
        """``need`` fits on ``machine`` (after the units ``freed`` leave it)."""
        mem, cpu = self.free(machine)
        for name in freed:
            got = need_of(self.units[name])
            mem, cpu = mem + got[0], cpu + got[1]
        return (not need[0] or mem >= need[0]) and (not need[1] or cpu >= need[1])

    def ordered(self, need: Need) -> list[tuple[int, str]]:
        """``(load, machine)`` of the machines where ``need`` fits, fewest units first, ties by
        ID. The list is the cluster's own: read it, do not keep it across changes."""
        if need == NOTHING:
            return self.by_load
        index = self._classes.get(need)
        if index is None:
            if len(self._classes) >= MAX_CLASSES:
                self._classes.clear()
            index = sorted((self.load(m), m) for m in self.machines if self.fits(need, m))
            self._classes[need] = index
        return index

    def metadata_ok(self, reqs: Requirements, machine: str) -> bool:
        """``machine``'s metadata satisfies ``reqs``."""
        meta = self.meta[machine]
        return all(meta.get(key) in values for key, values in reqs.metadata)

    def blocker(self, name: str, machine: str) -> str | None:
        """Why fleet's rules keep ``name`` off ``machine`` given what is there, or None.
        Reservations are not rules: see :meth:`fits`."""
        reqs = self.units[name]
        if reqs.machine_id is not None and reqs.machine_id != machine:
            return f"requires machine {reqs.machine_id}"
        if not self.metadata_ok(reqs, machine):
            return "machine metadata does not match"
        for peer in reqs.machine_of:
            if peer not in self.on[machine] and peer not in self.globals_on[machine]:
                return f"MachineOf {peer} is not on this machine"
        # Only a unit with patterns of its own can match a unit without any. The first
        # blocker by name is the one reported (the same whatever the set's order).
        others = self.on[machine] if reqs.conflicts else self.patterned[machine]
        hit: tuple[str, str] | None = None
        for other in others:
            if other == name or (hit is not None and other > hit[0]):
                continue
            theirs = self.units[other]
            if conflicts(reqs, name, theirs, other):
                hit = (other, f"conflicts with {other}")
            elif theirs.replaces and replaces(theirs, other, reqs, name):
                hit = (other, f"replaced by {other}")
        return hit[1] if hit is not None else None

    def victims(self, name: str, machine: str) -> list[str]:
        """Units on ``machine`` that ``name`` replaces (they move if it goes there)."""
        reqs = self.units[name]
        if not reqs.replaces:
            return []
        return sorted(o for o in self.on[machine]
                      if o != name and replaces(reqs, name, self.units[o], o))

    # --- machines ----------------------------------------------------------------------------

    def add_machine(self, machine: Machine) -> None:
        """A machine joins (or comes back) with nothing on it."""
        mid = machine.id
        self.machines[mid] = machine
        self.meta[mid] = machine.metadata_dict
        self.capacity[mid] = capacity_of(machine)
        self.used[mid] = NOTHING
        self.on[mid], self.patterned[mid], self.globals_on[mid] = set(), set(), set()
        self._index(mid, None)

    def update_machine(self, machine: Machine) -> None:
        """A machine's record changed (metadata, capacity): keep what is on it."""
        mid = machine.id
        with_room = self._indexed(mid)
        self.machines[mid] = machine
        self.meta[mid] = machine.metadata_dict
        self.capacity[mid] = capacity_of(machine)
        self._index(mid, with_room)

    def drop_machine(self, mid: str) -> None:
        """Forget a machine; whatever was on it must have been removed first."""
        self._unindex(mid)
        del self.machines[mid], self.meta[mid], self.capacity[mid], self.used[mid]
        del self.on[mid], self.patterned[mid], self.globals_on[mid]

    # --- placements --------------------------------------------------------------------------

    def place(self, unit: str, machine: str) -> None:
        """Put non-global ``unit`` on ``machine``."""
        with_room = self._indexed(machine)
        self.on[machine].add(unit)
        if self._has_patterns(unit):
            self.patterned[machine].add(unit)
        self.where[unit] = machine
        self._reserve(machine, need_of(self.units[unit]), +1)
        self._index(machine, with_room, self.load(machine) - 1)

    def remove(self, unit: str) -> str:
        """Take non-global ``unit`` off its machine; returns the machine."""
        machine = self.where.pop(unit)
        with_room = self._indexed(machine)
        self._reserve(machine, need_of(self.units[unit]), -1)
        self.on[machine].discard(unit)
        self.patterned[machine].discard(unit)
        self._index(machine, with_room, self.load(machine) + 1)
        return machine

    def place_global(self, unit: str, machine: str) -> None:
        """Put global ``unit`` on ``machine`` (no load, but its reservation counts)."""
        with_room = self._indexed(machine)
        self.globals_on[machine].add(unit)
        self.global_where.setdefault(unit, set()).add(machine)
        self._reserve(machine, need_of(self.units[unit]), +1)
        self._index(machine, with_room)

    def remove_global(self, unit: str, machine: str) -> None:
        """Take global ``unit`` off ``machine``."""
        with_room = self._indexed(machine)
        self.globals_on[machine].discard(unit)
        where = self.global_where.get(unit, set())
        where.discard(machine)
        if not where:
            self.global_where.pop(unit, None)
        self._reserve(machine, need_of(self.units[unit]), -1)
        self._index(machine, with_room)

    def set_requirements(self, unit: str, reqs: Requirements) -> None:
        """New requirements for a known unit, wherever it is placed (its reservation there
        changes with them)."""
        machines = ([self.where[unit]] if unit in self.where else []) + sorted(
            self.global_where.get(unit, ()))
        old = need_of(self.units[unit])
        for machine in machines:
            with_room = self._indexed(machine)
            self._reserve(machine, old, -1)
            self.units[unit] = reqs
            self._reserve(machine, need_of(reqs), +1)
            if unit in self.where:
                self.patterned[machine].discard(unit)
                if self._has_patterns(unit):
                    self.patterned[machine].add(unit)
            self._index(machine, with_room)
        self.units[unit] = reqs

    # --- the indexes -------------------------------------------------------------------------

    def _has_patterns(self, unit: str) -> bool:
        reqs = self.units[unit]
        return bool(reqs.conflicts or reqs.replaces)

    def _reserve(self, machine: str, need: Need, sign: int) -> None:
        used = self.used[machine]
        self.used[machine] = used[0] + sign * need[0], used[1] + sign * need[1]

    def _indexed(self, machine: str) -> list[Need]:
        """The reservation classes whose index lists ``machine`` now (before a change)."""
        return [need for need in self._classes if self.fits(need, machine)]

    def _index(self, machine: str, with_room: list[Need] | None,
               old_load: int | None = None) -> None:
        """Re-file ``machine`` after a change: it was listed under ``with_room`` at
        ``old_load`` (default: its load now); None: it was listed nowhere (new)."""
        self.version += 1
        load = self.load(machine)
        old = (load if old_load is None else old_load, machine)
        if with_room is not None:
            _drop(self.by_load, old)
        bisect.insort(self.by_load, (load, machine))
        had = set(with_room or ())
        for need, index in self._classes.items():
            if need in had:
                _drop(index, old)
            if self.fits(need, machine):
                bisect.insort(index, (load, machine))

    def _unindex(self, machine: str) -> None:
        self.version += 1
        entry = (self.load(machine), machine)
        for need in self._indexed(machine):
            _drop(self._classes[need], entry)
        _drop(self.by_load, entry)


def _drop(index: list[tuple[int, str]], entry: tuple[int, str]) -> None:
    i = bisect.bisect_left(index, entry)
    if i < len(index) and index[i] == entry:
        del index[i]


# --- why a reservation does not fit ----------------------------------------------------------


def human_memory(size: int) -> str:
    """``2 GiB``, ``1.5 GiB``, ``256 MiB``: how a waiting unit's reason shows memory."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.2f}".rstrip("0").rstrip(".") + f" {unit}"
    return f"{max(size, 0)} B"


def human_cpus(millis: int) -> str:
    """``0.5 CPU``, ``2 CPUs``."""
    value = max(millis, 0) / 1000
    return f"{value:g} CPU" + ("" if value == 1 else "s")


def room_reason(cluster: Cluster, need: Need, machines: Iterable[str]) -> str | None:
    """Why ``need`` fits on none of ``machines`` (the ones fleet's rules allow), naming the
    best of them: ``needs 2 GiB memory; the largest free is 1 GiB on m2``. None when there
    are no such machines."""
    best: list[tuple[int, str] | None] = [None, None]  # per resource: (free, machine)
    reported = [False, False]
    for machine in machines:
        free, cap = cluster.free(machine), cluster.capacity[machine]
        for i in (0, 1):
            reported[i] = reported[i] or cap[i] > 0
            top = best[i]
            if top is None or free[i] > top[0] or (free[i] == top[0] and machine < top[1]):
                best[i] = (free[i], machine)
    if best[0] is None or best[1] is None:
        return None
    (mem, mem_on), (cpu, cpu_on) = best[0], best[1]
    wants = [f"{human_memory(need[0])} memory" if need[0] else "",
             human_cpus(need[1]) if need[1] else ""]
    if need[0] and mem < need[0]:
        if not reported[0]:
            return f"needs {wants[0]}; no machine reports its memory"
        return f"needs {wants[0]}; the largest free is {human_memory(mem)} on {mem_on}"
    if need[1] and cpu < need[1]:
        if not reported[1]:
            return f"needs {wants[1]}; no machine reports its CPUs"
        return f"needs {wants[1]}; the most free is {human_cpus(cpu)} on {cpu_on}"
    return f"needs {' and '.join(w for w in wants if w)}; no machine has both free"
