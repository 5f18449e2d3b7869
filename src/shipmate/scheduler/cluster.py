"""The planner's working state: machines, what is placed where, what is reserved (pure).

:class:`Cluster` answers the questions a placement decision asks, each without a pass over
every unit or every machine:

- the machines in fleet's order, fewest (non-global) units first, ties by machine ID
  (:attr:`Cluster.by_load`, a sorted list kept up to date on every change);
- the same order restricted to the machines where a reservation fits and whose metadata
  suits (:meth:`Cluster.ordered`): one sorted list per distinct (reservation,
  ``MachineMetadata``) pair, built the first time a unit asks and then kept up to date, so
  neither a nearly full cluster nor the other region's machines are rescanned for every unit;
- whether a unit may run on a machine by fleet's rules (:meth:`Cluster.blocker`), looking only
  at the units there that carry ``Conflicts=``/``Replaces=`` patterns unless the unit has some.

Reservations are kept in whole bytes and thousandths of a CPU, so sums are exact.
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Callable, Generator, Iterable

from shipmate.scheduler.loadindex import LoadIndex
from shipmate.scheduler.model import Machine
from shipmate.spec.unitreqs import Requirements, any_match

#: A reservation, or free room: (bytes of memory, thousandths of a CPU).
Need = tuple[int, int]
NOTHING: Need = (0, 0)
#: What an index lists: machines with room for a reservation and metadata that suits.
Metadata = tuple[tuple[str, tuple[str, ...]], ...]
Class = tuple[Need, Metadata]
#: Indexes kept; past it, the least recently asked for is dropped (and rebuilt if asked again).
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
        self._classes: collections.OrderedDict[Class, LoadIndex] = collections.OrderedDict()
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

    def candidates(self, need: Need, metadata: Metadata = ()) -> Generator[str, None, None]:
        """The machines where ``need`` fits and whose metadata matches ``metadata``, fewest
        units first, ties by ID. Close the generator before changing the cluster."""
        if need == NOTHING and not metadata:
            for _, machine in self.by_load:
                yield machine
            return
        key = (need, metadata)
        index = self._classes.get(key)
        if index is None:
            if len(self._classes) >= MAX_CLASSES:
                self._classes.popitem(last=False)
            index = LoadIndex((self.load(m), m) for m in self.machines if self._lists(key, m))
            self._classes[key] = index
        else:
            self._classes.move_to_end(key)
        walk = index.walk(self._load_or_none, self._member(key))
        try:
            yield from walk
        finally:
            walk.close()

    def metadata_ok(self, reqs: Requirements, machine: str) -> bool:
        """``machine``'s metadata satisfies ``reqs``."""
        return self._suits(reqs.metadata, machine)

    def _suits(self, metadata: Metadata, machine: str) -> bool:
        meta = self.meta[machine]
        return all(meta.get(key) in values for key, values in metadata)

    def _load_or_none(self, machine: str) -> int | None:
        units = self.on.get(machine)
        return None if units is None else len(units)

    def _member(self, key: Class) -> Callable[[str], bool]:
        """:meth:`_lists` for one index, as one flat function (asked for every machine a
        walk passes)."""
        (mem, cpu), metadata = key
        capacity, used, meta = self.capacity, self.used, self.meta

        def member(machine: str) -> bool:
            cap, taken = capacity[machine], used[machine]
            if (mem and cap[0] - taken[0] < mem) or (cpu and cap[1] - taken[1] < cpu):
                return False
            have = meta[machine]
            return all(have.get(k) in values for k, values in metadata)

        return member

    def _lists(self, key: Class, machine: str) -> bool:
        """The index of ``key`` lists ``machine`` (as things are now)."""
        return self.fits(key[0], machine) and self._suits(key[1], machine)

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
        bisect.insort(self.by_load, (0, mid))
        self._refile(mid)

    def update_machine(self, machine: Machine) -> None:
        """A machine's record changed (metadata, capacity): keep what is on it."""
        mid = machine.id
        self.machines[mid] = machine
        self.meta[mid] = machine.metadata_dict
        self.capacity[mid] = capacity_of(machine)
        self._refile(mid)

    def drop_machine(self, mid: str) -> None:
        """Forget a machine; whatever was on it must have been removed first."""
        self.version += 1
        _drop(self.by_load, (self.load(mid), mid))
        for index in self._classes.values():
            index.file(mid, None)
        del self.machines[mid], self.meta[mid], self.capacity[mid], self.used[mid]
        del self.on[mid], self.patterned[mid], self.globals_on[mid]

    # --- placements --------------------------------------------------------------------------

    def place(self, unit: str, machine: str) -> None:
        """Put non-global ``unit`` on ``machine``."""
        self.on[machine].add(unit)
        if self._has_patterns(unit):
            self.patterned[machine].add(unit)
        self.where[unit] = machine
        self._reserve(machine, need_of(self.units[unit]), +1)
        self._moved(machine, self.load(machine) - 1)  # the indexes see it when they look

    def remove(self, unit: str) -> str:
        """Take non-global ``unit`` off its machine; returns the machine."""
        machine = self.where.pop(unit)
        self._reserve(machine, need_of(self.units[unit]), -1)
        self.on[machine].discard(unit)
        self.patterned[machine].discard(unit)
        self._moved(machine, self.load(machine) + 1)
        self._refile(machine)
        return machine

    def place_global(self, unit: str, machine: str) -> None:
        """Put global ``unit`` on ``machine`` (no load, but its reservation counts)."""
        self.globals_on[machine].add(unit)
        self.global_where.setdefault(unit, set()).add(machine)
        self._reserve(machine, need_of(self.units[unit]), +1)
        self.version += 1

    def remove_global(self, unit: str, machine: str) -> None:
        """Take global ``unit`` off ``machine``."""
        self.globals_on[machine].discard(unit)
        where = self.global_where.get(unit, set())
        where.discard(machine)
        if not where:
            self.global_where.pop(unit, None)
        self._reserve(machine, need_of(self.units[unit]), -1)
        self._refile(machine)

    def set_requirements(self, unit: str, reqs: Requirements) -> None:
        """New requirements for a known unit, wherever it is placed (its reservation there
        changes with them)."""
        machines = ([self.where[unit]] if unit in self.where else []) + sorted(
            self.global_where.get(unit, ()))
        old = need_of(self.units[unit])
        for machine in machines:
            self._reserve(machine, old, -1)
            self.units[unit] = reqs
            self._reserve(machine, need_of(reqs), +1)
            if unit in self.where:
                self.patterned[machine].discard(unit)
                if self._has_patterns(unit):
                    self.patterned[machine].add(unit)
            self._refile(machine)
        self.units[unit] = reqs

    # --- the indexes -------------------------------------------------------------------------

    def _has_patterns(self, unit: str) -> bool:
        reqs = self.units[unit]
        return bool(reqs.conflicts or reqs.replaces)

    def _reserve(self, machine: str, need: Need, sign: int) -> None:
        used = self.used[machine]
        self.used[machine] = used[0] + sign * need[0], used[1] + sign * need[1]

    def _moved(self, machine: str, old_load: int) -> None:
        """``machine``'s load went from ``old_load`` to what it is now."""
        self.version += 1
        _drop(self.by_load, (old_load, machine))
        bisect.insort(self.by_load, (self.load(machine), machine))

    def _refile(self, machine: str) -> None:
        """File ``machine`` in every index as it is now (after it gained room or lost load,
        which the indexes would not notice by themselves)."""
        self.version += 1
        load = self.load(machine)
        for key, index in self._classes.items():
            index.file(machine, load if self._lists(key, machine) else None)


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
