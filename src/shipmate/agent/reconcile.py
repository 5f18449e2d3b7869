"""The agent's decisions (pure): which units belong on this machine, what to start and stop,
and whether the machine has been cut off from the store for too long.

fleet's agent reconciler in two functions: :func:`units_for_machine` reads the registry's
view (unit files, target states, placements) for one machine, and :func:`plan` compares the
wanted digests with what runs here. The digest of a unit is whatever identifies how it runs
(the supervisor's config digest, the container spec hash): a changed digest is a restart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping


@dataclasses.dataclass(frozen=True)
class LocalUnit:
    """A unit the registry says belongs on this machine."""

    name: str
    hash: str  # fleet's unit hash of the file as submitted
    text: str
    desired: str  # loaded or launched


def units_for_machine(
    machine_id: str,
    texts: Mapping[str, tuple[str, str]],  # unit -> (hash, text)
    desired: Mapping[str, str],  # unit -> inactive/loaded/launched
    placements: Mapping[str, Iterable[str]],  # unit -> machines
) -> dict[str, LocalUnit]:
    """Units placed on ``machine_id`` whose target state is loaded or launched and whose
    file exists (a destroyed unit may linger in a placement for a moment)."""
    out: dict[str, LocalUnit] = {}
    for name, machines in placements.items():
        if machine_id not in set(machines):
            continue
        target = desired.get(name, "inactive")
        if target not in ("loaded", "launched") or name not in texts:
            continue
        unit_hash, text = texts[name]
        out[name] = LocalUnit(name, unit_hash, text, target)
    return out


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the agent does next: stop these, then start these."""

    stop: tuple[str, ...] = ()
    start: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """Nothing to do."""
        return not self.stop and not self.start


def plan(wanted: Mapping[str, str], running: Mapping[str, str]) -> Plan:
    """``wanted``: unit -> digest of launched units; ``running``: unit -> digest of what
    runs here. Units no longer wanted stop; changed ones stop and start again; missing ones
    start. Sorted, so the order is deterministic."""
    stop = sorted(n for n, d in running.items() if wanted.get(n) != d)
    start = sorted(n for n, d in wanted.items() if running.get(n) != d)
    return Plan(tuple(stop), tuple(start))


class Heartbeat:
    """Whether this machine may keep its units running (pure; times are monotonic seconds).

    The agent renews its lease about every TTL/3. If no renewal has succeeded for longer
    than the TTL, the store has certainly expired the lease and the scheduler is moving the
    units elsewhere: the agent must stop them (:meth:`cut_off`), so a partitioned machine
    does not keep duplicates running. After that it re-registers when the store answers.
    """

    def __init__(self, ttl: float, now: float) -> None:
        self.ttl = ttl
        self.last_renewed = now
        self.registered = False
        self.units_stopped = False

    @property
    def interval(self) -> float:
        """Seconds between renewals."""
        return max(0.05, self.ttl / 3)

    def renewed(self, now: float) -> None:
        """A keepalive (or a fresh registration) succeeded."""
        self.last_renewed = now
        self.registered = True
        self.units_stopped = False

    def lost(self) -> None:
        """The lease is gone (expired or revoked): register again."""
        self.registered = False

    def cut_off(self, now: float) -> bool:
        """True once, when the units must be stopped: no renewal for longer than the TTL."""
        if self.units_stopped or now - self.last_renewed <= self.ttl:
            return False
        self.units_stopped = True
        self.registered = False
        return True

    @property
    def may_run_units(self) -> bool:
        """False while cut off (and until re-registered)."""
        return not self.units_stopped
