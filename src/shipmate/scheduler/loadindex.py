"""A lazily kept index of machines in fleet's order, fewest units first (pure).

The scheduler keeps one :class:`LoadIndex` per kind of unit it places (a reservation and a
``MachineMetadata`` constraint): the machines with room for that reservation, whose metadata
suits. Placing a unit raises a machine's load and lowers its room in every index at once;
updating every index on every placement would cost a pass over the indexes per unit. So the
index is a heap whose entries may be stale, checked when they surface: an entry whose load
is behind is put back at the machine's load now, one whose machine no longer has room or is
gone is dropped. Changes that *lower* a load or *add* room (a unit leaves, a machine joins
or reports more) are not seen that way, so the cluster files them at once
(:meth:`LoadIndex.file`); each machine's current entry is the one :attr:`LoadIndex.at` names.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Generator, Iterable


class LoadIndex:
    """Machines of one kind in ``(load, machine ID)`` order."""

    def __init__(self, entries: Iterable[tuple[int, str]]) -> None:
        self.heap = list(entries)
        heapq.heapify(self.heap)
        self.at = {machine: load for load, machine in self.heap}

    def file(self, machine: str, load: int | None) -> None:
        """``machine`` now belongs at ``load`` (None: not in this index)."""
        if load is None:
            self.at.pop(machine, None)  # its entries are dropped when they surface
        elif self.at.get(machine) != load:
            self.at[machine] = load
            heapq.heappush(self.heap, (load, machine))

    def walk(self, load_of: Callable[[str], int | None],
             belongs: Callable[[str], bool]) -> Generator[str, None, None]:
        """The machines in order, checked against ``load_of`` (None: gone) and ``belongs``
        as they surface. Close the generator before changing the cluster: it puts back what
        it took out."""
        taken: list[tuple[int, str]] = []
        try:
            while self.heap:
                load, machine = heapq.heappop(self.heap)
                if self.at.get(machine) != load:
                    continue  # superseded by a later entry, or dropped
                now = load_of(machine)
                if now is None or not belongs(machine):
                    del self.at[machine]
                elif now != load:
                    self.at[machine] = now
                    heapq.heappush(self.heap, (now, machine))
                else:
                    taken.append((load, machine))
                    yield machine
        finally:
            for entry in taken:
                heapq.heappush(self.heap, entry)
