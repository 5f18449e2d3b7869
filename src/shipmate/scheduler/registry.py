"""The fleet registry in the store: key layout and typed accessors (the scheduler's one I/O
module besides the engine).

Key layout (all values compact JSON; see docs/registry.md)::

    /shipmate/fleet/units/<unit>               UnitRecord     written by submit, deleted by destroy
    /shipmate/fleet/desired/<unit>             {"state": ...} inactive | loaded | launched
    /shipmate/fleet/placements/<unit>          Placement      written by the leader only (fenced)
    /shipmate/fleet/waiting/<unit>             {"reason": ..} why an active unit is not placed
                                                              (leader only, fenced)
    /shipmate/fleet/machines/<machine>         Machine        agent heartbeat, under its lease
    /shipmate/fleet/states/<unit>/<machine>    UnitState      agent report, under its lease
    /shipmate/fleet/leader                     Leader         scheduler leader, under its lease
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from shipmate.errors import ConflictError, NotFoundError, StoreError, ValidationError
from shipmate.scheduler.model import (
    DesiredState,
    Leader,
    Machine,
    Placement,
    UnitRecord,
    UnitState,
    dumps,
    loads,
    parse_desired,
)
from shipmate.spec.unitname import parse_unit_name
from shipmate.spec.units import Unit, parse_unit
from shipmate.store.base import Compare, KeyValue, Op, Store

PREFIX = "/shipmate/fleet/"
UNITS = PREFIX + "units/"
DESIRED = PREFIX + "desired/"
PLACEMENTS = PREFIX + "placements/"
WAITING = PREFIX + "waiting/"
MACHINES = PREFIX + "machines/"
STATES = PREFIX + "states/"
LEADER_KEY = PREFIX + "leader"
_MACHINE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def validate_machine_id(machine_id: str) -> str:
    """Return ``machine_id`` if it is safe as a key segment, else raise ValidationError."""
    if not _MACHINE_ID.match(machine_id):
        raise ValidationError(f"invalid machine ID {machine_id!r}",
                              hint="use letters, digits, '_', '.', ':' and '-' (max 128)")
    return machine_id


def unit_key(name: str) -> str:
    """Key of a unit file."""
    return UNITS + name


def desired_key(name: str) -> str:
    """Key of a unit's desired (target) state."""
    return DESIRED + name


def placement_key(name: str) -> str:
    """Key of a unit's placement."""
    return PLACEMENTS + name


def waiting_key(name: str) -> str:
    """Key of the reason a unit waits (is active but placed nowhere)."""
    return WAITING + name


def machine_key(machine_id: str) -> str:
    """Key of a machine's heartbeat record."""
    return MACHINES + machine_id


def state_key(unit: str, machine_id: str) -> str:
    """Key of the state ``machine_id``'s agent reports for ``unit``."""
    return f"{STATES}{unit}/{machine_id}"


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Everything under ``/shipmate/fleet/`` read at one revision, with each key's mod
    revision (for compare-and-swap)."""

    revision: int
    units: dict[str, UnitRecord]
    desired: dict[str, DesiredState]
    placements: dict[str, Placement]
    machines: dict[str, Machine]
    states: list[UnitState]
    leader: Leader | None
    mods: dict[str, int]
    waiting: dict[str, str] = dataclasses.field(default_factory=dict)

    def mod(self, key: str) -> int:
        """Mod revision of ``key`` at the snapshot (0: missing)."""
        return self.mods.get(key, 0)


class Registry:
    """Typed access to the fleet registry in ``store``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # unit files --------------------------------------------------------------------------

    async def submit(self, name: str, text: str | None = None) -> UnitRecord:
        """Validate and store unit ``name`` (desired state ``inactive``), like ``fleetctl
        submit``. Without ``text``, an instance takes its template's content. Submitting the
        same content again is a no-op; different content under an existing name is refused.
        """
        unit = await self._resolve(name, text)
        record = UnitRecord(unit.name, unit.text, unit.hash, unit.requirements)
        res = await self.store.txn(
            [Compare.missing(unit_key(name))],
            [Op.put(unit_key(name), dumps(record.to_json())),
             Op.put(desired_key(name), dumps({"state": "inactive"}))],
            [Op.get(unit_key(name))],
        )
        if res.succeeded:
            return record
        existing = UnitRecord.from_json(loads(res.responses[0][0].value))
        if existing.hash != record.hash:
            raise ConflictError(
                f"unit {name} already exists with different content "
                f"(hash {existing.hash[:7]}, submitted {record.hash[:7]})",
                hint=f"destroy it first: shipmate fleet destroy {name}",
            )
        return existing

    async def replace(self, name: str, text: str) -> UnitRecord:
        """Store new content for unit ``name`` in place, keeping its desired state and
        placement (a Shipmate extension: ``fleetctl submit`` refuses new content under an
        existing name). The agent running it converges to the new content: a container
        unit is replaced start-first and health-gated, the old container serving until the
        new one passes its check. A unit that does not exist yet is submitted."""
        unit = await self._resolve(name, text)
        record = UnitRecord(unit.name, unit.text, unit.hash, unit.requirements)
        res = await self.store.txn(
            [Compare(unit_key(name), "version", ">", 0)],
            [Op.put(unit_key(name), dumps(record.to_json()))],
        )
        return record if res.succeeded else await self.submit(name, text)

    async def _resolve(self, name: str, text: str | None) -> Unit:
        info = parse_unit_name(name)
        if text is not None:
            return parse_unit(name, text)
        if not info.is_instance:
            raise ValidationError(f"unit {name}: no content given",
                                  hint="pass the unit file's text")
        template = await self.unit(info.template)
        if template is None:
            raise NotFoundError(f"unable to find unit {name} or its template {info.template}",
                                hint=f"submit {info.template} first")
        return parse_unit(name, template.text)

    async def unit(self, name: str) -> UnitRecord | None:
        """The stored unit file ``name``, or None."""
        kv = await self.store.get(unit_key(name))
        return UnitRecord.from_json(loads(kv.value)) if kv else None

    async def units(self) -> dict[str, UnitRecord]:
        """Every stored unit file, by name."""
        kvs, _ = await self.store.range(UNITS)
        return {kv.key[len(UNITS):]: UnitRecord.from_json(loads(kv.value)) for kv in kvs}

    async def destroy(self, name: str) -> bool:
        """Remove the unit file, its desired state and its placement; False if it was not
        there. Agents stop it when its placement disappears."""
        res = await self.store.txn(
            [Compare(unit_key(name), "version", ">", 0)],
            [Op.delete(unit_key(name)), Op.delete(desired_key(name)),
             Op.delete(placement_key(name)), Op.delete(waiting_key(name))],
        )
        return res.succeeded

    # desired state -----------------------------------------------------------------------

    async def set_desired(self, name: str, state: str) -> None:
        """Set the target state (``fleetctl load/start/stop/unload``). The unit must exist;
        templates cannot be loaded or launched."""
        desired = parse_desired(state)
        if desired != "inactive" and parse_unit_name(name).is_template:
            raise ValidationError(f"cannot activate template {name!r}",
                                  hint="start an instance of it, e.g. "
                                  + name.replace("@.", "@1."))
        res = await self.store.txn(
            [Compare(unit_key(name), "version", ">", 0)],
            [Op.put(desired_key(name), dumps({"state": desired}))],
        )
        if not res.succeeded:
            raise NotFoundError(f"unit {name} does not exist", hint="submit it first")

    async def desired(self) -> dict[str, DesiredState]:
        """Every unit's desired state."""
        kvs, _ = await self.store.range(DESIRED)
        return {kv.key[len(DESIRED):]: parse_desired(loads(kv.value)["state"]) for kv in kvs}

    # placements (written by the engine) ---------------------------------------------------

    async def placements(self) -> dict[str, Placement]:
        """Every placement, by unit name."""
        kvs, _ = await self.store.range(PLACEMENTS)
        return {kv.key[len(PLACEMENTS):]: Placement.from_json(loads(kv.value)) for kv in kvs}

    async def waiting(self) -> dict[str, str]:
        """Why each waiting unit is not placed, by unit name (written by the leader)."""
        kvs, _ = await self.store.range(WAITING)
        return {kv.key[len(WAITING):]: str(loads(kv.value).get("reason", "")) for kv in kvs}

    async def placed_on(self, machine_id: str) -> list[str]:
        """Names of the units placed on ``machine_id`` (what its agent should run)."""
        return sorted(u for u, p in (await self.placements()).items() if machine_id in p.machines)

    # machines (written by agents) ---------------------------------------------------------

    async def register_machine(self, machine: Machine, lease: int) -> None:
        """Publish (or refresh) this machine's record under the agent's lease."""
        validate_machine_id(machine.id)
        await self.store.put(machine_key(machine.id), dumps(machine.to_json()), lease=lease)

    async def machines(self) -> dict[str, Machine]:
        """Live machines, by ID."""
        kvs, _ = await self.store.range(MACHINES)
        return {kv.key[len(MACHINES):]: Machine.from_json(loads(kv.value)) for kv in kvs}

    # unit states (written by agents) ------------------------------------------------------

    async def report_state(self, state: UnitState, lease: int) -> None:
        """Publish what this machine's agent sees of a unit, under the agent's lease."""
        validate_machine_id(state.machine)
        await self.store.put(state_key(state.unit, state.machine), dumps(state.to_json()),
                             lease=lease)

    async def clear_state(self, unit: str, machine_id: str) -> None:
        """Remove a unit's state report (the agent unloaded it)."""
        await self.store.delete(state_key(unit, machine_id))

    async def unit_states(self) -> list[UnitState]:
        """Every reported unit state, sorted by unit then machine."""
        kvs, _ = await self.store.range(STATES)
        return [UnitState.from_json(loads(kv.value)) for kv in kvs]

    async def leader(self) -> Leader | None:
        """The current scheduler leader, if any."""
        kv = await self.store.get(LEADER_KEY)
        return Leader.from_json(loads(kv.value)) if kv else None

    # everything at once (the engine) --------------------------------------------------------

    async def snapshot(self) -> Snapshot:
        """Read the whole registry at one revision."""
        kvs, revision = await self.store.range(PREFIX)
        return build_snapshot(kvs, revision)


def build_snapshot(kvs: Iterable[KeyValue], revision: int) -> Snapshot:
    """Decode a range over :data:`PREFIX` into a :class:`Snapshot`."""
    snap = Snapshot(revision, {}, {}, {}, {}, [], None, {})
    leader: Leader | None = None
    for kv in kvs:
        snap.mods[kv.key] = kv.mod_revision
        try:
            if kv.key == LEADER_KEY:
                leader = Leader.from_json(loads(kv.value))
            else:
                _decode_into(snap, kv)
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            raise StoreError(f"corrupt registry record at {kv.key}: {exc}",
                             hint="delete or rewrite that key") from exc
    return dataclasses.replace(snap, leader=leader)


def _decode_into(snap: Snapshot, kv: KeyValue) -> None:
    key = kv.key
    if key.startswith(UNITS):
        snap.units[key[len(UNITS):]] = UnitRecord.from_json(loads(kv.value))
    elif key.startswith(DESIRED):
        snap.desired[key[len(DESIRED):]] = parse_desired(loads(kv.value)["state"])
    elif key.startswith(PLACEMENTS):
        snap.placements[key[len(PLACEMENTS):]] = Placement.from_json(loads(kv.value))
    elif key.startswith(MACHINES):
        snap.machines[key[len(MACHINES):]] = Machine.from_json(loads(kv.value))
    elif key.startswith(STATES):
        snap.states.append(UnitState.from_json(loads(kv.value)))
    elif key.startswith(WAITING):
        snap.waiting[key[len(WAITING):]] = str(loads(kv.value).get("reason", ""))
