"""What the scheduler leader knows of the registry, kept current from the watch (pure).

A :class:`View` starts from one read of the registry (:meth:`View.load`) and then takes the
watch's events in order (:meth:`View.apply`); each change is handed on to the
:class:`~shipmate.scheduler.placement.Planner`, so a pass plans only what changed. It also
keeps each key's mod revision, which the leader's compare-and-swap writes compare, and what
the store holds of the leader's own output (placements, waiting reasons), which the leader
records as soon as its writes commit (:meth:`View.wrote`): their echo on the watch is then
recognised and skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shipmate.errors import StoreError, ValidationError
from shipmate.scheduler.model import (
    DesiredState,
    Machine,
    Placement,
    loads,
    parse_desired,
    requirements_from_json,
)
from shipmate.scheduler.placement import Planner
from shipmate.scheduler.registry import DESIRED, MACHINES, PLACEMENTS, UNITS, WAITING
from shipmate.spec.unitreqs import Requirements
from shipmate.store.base import Event, KeyValue

#: The prefixes the leader reads and follows.
PREFIXES = (UNITS, DESIRED, MACHINES, PLACEMENTS, WAITING)


class View:
    """The registry as of :attr:`revision` (plus the leader's own later writes)."""

    def __init__(self, revision: int,
                 decoded: dict[str, tuple[int, Requirements]] | None = None) -> None:
        self.revision = revision
        self.units: dict[str, Requirements] = {}
        self.desired: dict[str, DesiredState] = {}
        self.machines: dict[str, Machine] = {}
        self.placements: dict[str, tuple[str, ...]] = {}
        self.waiting: dict[str, str] = {}
        self.mods: dict[str, int] = {}
        self._wrote: dict[str, int] = {}  # key -> revision of the leader's last write to it
        # Requirements by unit key and mod revision: a re-read does not decode them again.
        self.decoded = decoded if decoded is not None else {}

    @classmethod
    def load(cls, kvs: Iterable[KeyValue], revision: int,
             previous: View | None = None) -> View:
        """The view of a read at ``revision`` (``previous``: reuse what it decoded)."""
        view = cls(revision, previous.decoded if previous is not None else None)
        seen: dict[str, tuple[int, Requirements]] = {}
        for kv in kvs:
            view._put(kv)
            if kv.key.startswith(UNITS):
                seen[kv.key] = view.decoded[kv.key]
        view.decoded = seen
        return view

    def planner(self) -> Planner:
        """A planner holding this view's records and placements."""
        return Planner.load(self.units, self.desired, list(self.machines.values()),
                            self.placements)

    def known(self, event: Event) -> bool:
        """``event`` tells nothing new: it is in the read, or the echo of our own write."""
        return event.revision <= max(self.revision, self._wrote.get(event.kv.key, 0))

    def apply(self, event: Event, planner: Planner) -> bool:
        """Take in one watch event, telling ``planner`` what changed; True if it asks for
        a pass (a unit, a target state or a machine changed)."""
        key = event.kv.key
        if self.known(event):
            return False
        before = self._snapshot_of(key)
        if event.type == "put":
            self._put(event.kv)
        else:
            self._delete(key)
        after = self._snapshot_of(key)
        if before == after:
            return False
        return self._tell(key, after, planner)

    def wrote(self, key: str, value: object | None, revision: int) -> None:
        """The leader committed ``value`` (a placement's machines or a waiting reason; None:
        deleted) at ``key`` at ``revision``."""
        self._wrote[key] = revision
        found = self._table(key)
        if found is None:
            return
        name, table = found
        if value is None:
            table.pop(name, None)
            self.mods.pop(key, None)
        else:
            table[name] = value
            self.mods[key] = revision

    def mod(self, key: str) -> int:
        """Mod revision of ``key`` as known (0: missing)."""
        return self.mods.get(key, 0)

    # --- records -----------------------------------------------------------------------------

    def _put(self, kv: KeyValue) -> None:
        key = kv.key
        try:
            if key.startswith(UNITS):
                self.units[key[len(UNITS):]] = self._requirements(kv)
            elif key.startswith(DESIRED):
                self.desired[key[len(DESIRED):]] = parse_desired(loads(kv.value)["state"])
            elif key.startswith(MACHINES):
                self.machines[key[len(MACHINES):]] = Machine.from_json(loads(kv.value))
            elif key.startswith(PLACEMENTS):
                placement = Placement.from_json(loads(kv.value))
                self.placements[key[len(PLACEMENTS):]] = placement.machines
            elif key.startswith(WAITING):
                self.waiting[key[len(WAITING):]] = str(loads(kv.value).get("reason", ""))
            else:
                return
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            raise StoreError(f"corrupt registry record at {key}: {exc}",
                             hint="delete or rewrite that key") from exc
        self.mods[key] = kv.mod_revision

    def _requirements(self, kv: KeyValue) -> Requirements:
        cached = self.decoded.get(kv.key)
        if cached is not None and cached[0] == kv.mod_revision:
            return cached[1]
        data = loads(kv.value)
        reqs = requirements_from_json(data.get("requirements") or {})
        self.decoded[kv.key] = (kv.mod_revision, reqs)
        return reqs

    def _table(self, key: str) -> tuple[str, dict[str, Any]] | None:
        """The name in ``key`` and the table of its kind."""
        for prefix, table in ((UNITS, self.units), (DESIRED, self.desired),
                              (MACHINES, self.machines), (PLACEMENTS, self.placements),
                              (WAITING, self.waiting)):
            if key.startswith(prefix):
                return key[len(prefix):], table
        return None

    def _delete(self, key: str) -> None:
        self.mods.pop(key, None)
        self.decoded.pop(key, None)
        found = self._table(key)
        if found is not None:
            found[1].pop(found[0], None)

    def _snapshot_of(self, key: str) -> object:
        found = self._table(key)
        return None if found is None else found[1].get(found[0])

    def _tell(self, key: str, value: object, planner: Planner) -> bool:
        if key.startswith(UNITS):
            name = key[len(UNITS):]
            if isinstance(value, Requirements):
                planner.set_unit(name, value)
            else:
                planner.remove_unit(name)
        elif key.startswith(DESIRED):
            planner.set_desired(key[len(DESIRED):], parse_desired(value) if isinstance(
                value, str) else None)
        elif key.startswith(MACHINES):
            if isinstance(value, Machine):
                planner.set_machine(value)
            else:
                planner.remove_machine(key[len(MACHINES):])
        else:
            return False  # placements and reasons: the store's copy, compared when writing
        return True
