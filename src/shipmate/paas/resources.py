"""Dokku's ``resource:*`` settings: memory and CPU limits and reservations per app and
process type, written into each instance's ``.container`` unit (``Memory=``, ``CPUQuota=``,
``MemoryReservation=``) at the next deploy.

The record (``/shipmate/apps/<app>/resources``) maps ``limit`` and ``reserve`` to process
types (``_default_`` for every type) and those to ``{"memory": bytes, "cpu": cpus}``. A
process type's own value wins over the default, key by key. As on Dokku, a change takes
effect on the next deploy (``ps:restart``, ``ps:rebuild``, a push).

Applied to containers: the memory and CPU limits and the memory reservation (Docker's
``--memory``, ``--cpus``, ``--memory-reservation``); Docker has no CPU reservation. Both
reservations also go to the scheduler (``[X-Fleet] ReserveMemory=``/``ReserveCPU=``): an
instance is placed only on a machine with that much memory and CPU not yet reserved.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from shipmate.errors import ValidationError
from shipmate.paas.model import PROCESS_TYPE
from shipmate.paas.state import app_key
from shipmate.spec.resources import format_cpus, format_memory, parse_cpus, parse_memory
from shipmate.store.base import Store

DEFAULT = "_default_"
KINDS = ("limit", "reserve")
RESOURCES = ("memory", "cpu")
Record = dict[str, dict[str, dict[str, float]]]


@dataclasses.dataclass(frozen=True)
class ProcessResources:
    """What one process type gets (None: no limit / no reservation)."""

    memory: int | None = None
    cpus: float | None = None
    memory_reservation: int | None = None
    cpu_reservation: float | None = None

    def unit_lines(self) -> list[str]:
        """The ``[Container]`` lines of an instance unit."""
        lines = []
        if self.memory is not None:
            lines.append(f"Memory={format_memory(self.memory)}")
        if self.memory_reservation is not None:
            lines.append(f"MemoryReservation={format_memory(self.memory_reservation)}")
        if self.cpus is not None:
            lines.append(f"CPUQuota={format_cpus(self.cpus)}")
        return lines

    def reservation_lines(self) -> list[str]:
        """The ``[X-Fleet]`` lines that make the scheduler place the instance only where its
        reservation fits (``ReserveMemory=``, ``ReserveCPU=``)."""
        lines = []
        if self.memory_reservation is not None:
            lines.append(f"ReserveMemory={format_memory(self.memory_reservation)}")
        if self.cpu_reservation is not None:
            lines.append(f"ReserveCPU={self.cpu_reservation:g}")
        return lines


def parse_values(values: Mapping[str, Any]) -> dict[str, float]:
    """``{"memory": "256m", "cpu": "0.5"}`` (as typed: a bare memory number is megabytes,
    as in Dokku) -> ``{"memory": 268435456, "cpu": 0.5}``."""
    out: dict[str, float] = {}
    for key, raw in values.items():
        if key not in RESOURCES:
            raise ValidationError(f"unknown resource {key!r}", hint="use --memory or --cpu")
        text = str(raw)
        out[key] = parse_memory(text, bare="m", what="--memory") if key == "memory" \
            else parse_cpus(text, what="--cpu")
    return out


def check_process_type(proc: str) -> str:
    """``--process-type`` value: a process type name or ``_default_``."""
    if proc != DEFAULT and not PROCESS_TYPE.fullmatch(proc):
        raise ValidationError(f"Invalid process type {proc!r}",
                              hint="use a Procfile process type such as web or worker")
    return proc


def changed(record: Record, kind: str, proc: str, values: Mapping[str, float], *,
            clear: bool = False) -> Record:
    """``record`` with ``values`` set for ``kind``/``proc`` (or that entry cleared)."""
    if kind not in KINDS:
        raise ValidationError(f"unknown resource kind {kind!r}", hint="limit or reserve")
    out = {k: {p: dict(v) for p, v in procs.items()} for k, procs in record.items()}
    procs = out.setdefault(kind, {})
    if clear:
        procs.pop(check_process_type(proc), None)
    else:
        procs.setdefault(check_process_type(proc), {}).update(values)
    return out


def resolve(record: Record, proc: str) -> ProcessResources:
    """What process type ``proc`` gets: its own values over the defaults."""
    def get(kind: str, key: str) -> float | None:
        procs = record.get(kind, {})
        value = procs.get(proc, {}).get(key, procs.get(DEFAULT, {}).get(key))
        return None if value is None else value

    memory, reserve = get("limit", "memory"), get("reserve", "memory")
    return ProcessResources(
        memory=int(memory) if memory is not None else None, cpus=get("limit", "cpu"),
        memory_reservation=int(reserve) if reserve is not None else None,
        cpu_reservation=get("reserve", "cpu"))


def report(record: Record, processes: list[str]) -> list[tuple[str, str]]:
    """``resource:report`` rows: ``("Resource web memory limit", "256m")``..., for the
    defaults and each process type that has values of its own."""
    rows = []
    for proc in [DEFAULT, *sorted(p for p in processes if p != DEFAULT)]:
        scope = "" if proc == DEFAULT else f"{proc} "
        for key in RESOURCES:
            for kind in KINDS:
                value = record.get(kind, {}).get(proc, {}).get(key)
                if proc != DEFAULT and value is None:
                    continue
                shown = "" if value is None else (
                    format_memory(int(value)) if key == "memory" else f"{value:g}")
                rows.append((f"Resource {scope}{key} {kind}", shown))
    return rows


class ResourceSettings:
    """The record in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, app: str) -> Record:
        """The app's record (empty: no limits, no reservations)."""
        kv = await self.store.get(app_key(app, "resources"))
        data: Record = json.loads(kv.value) if kv else {}
        return data

    async def put(self, app: str, record: Record) -> None:
        """Replace the app's record."""
        await self.store.put(app_key(app, "resources"), json.dumps(record, sort_keys=True))

    async def for_processes(self, app: str, processes: list[str]
                            ) -> dict[str, ProcessResources]:
        """What each of ``processes`` gets."""
        record = await self.get(app)
        return {proc: resolve(record, proc) for proc in processes}
