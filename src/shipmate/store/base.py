"""The store interface, with etcd's data model.

Keys are ``str`` (by convention ``/shipmate/...``), values are ``bytes``. Every write bumps a
single store-wide revision. Each key has a create revision, a mod revision and a version
(number of writes since creation). Watches deliver every event after a revision exactly once,
in revision order; asking for a compacted revision raises :class:`CompactedError`. Leases have
a TTL; keys attached to a lease are deleted (with delete events) when it expires or is revoked.

Backends: :mod:`shipmate.store.sqlite` (embedded, default) and :mod:`shipmate.store.etcd`.
Both pass ``tests/unit/store/test_contract.py``.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Literal

CompareTarget = Literal["value", "version", "create", "mod", "lease"]
CompareOp = Literal["==", "!=", "<", ">"]


@dataclasses.dataclass(frozen=True)
class KeyValue:
    """One key at one revision."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0

    def text(self) -> str:
        """The value decoded as UTF-8."""
        return self.value.decode()


@dataclasses.dataclass(frozen=True)
class Event:
    """A change seen by a watch. For deletes, ``kv.value`` is empty and ``kv.mod_revision`` is
    the revision of the delete."""

    type: Literal["put", "delete"]
    kv: KeyValue
    prev_kv: KeyValue | None = None

    @property
    def revision(self) -> int:
        """The store revision at which this event happened."""
        return self.kv.mod_revision


@dataclasses.dataclass(frozen=True)
class Compare:
    """A transaction guard, as in etcd: ``target(key) op value``.

    A missing key has version 0, create 0, mod 0, lease 0, and never equals any value.
    """

    key: str
    target: CompareTarget
    op: CompareOp
    value: int | bytes

    @staticmethod
    def missing(key: str) -> Compare:
        """True when ``key`` does not exist."""
        return Compare(key, "version", "==", 0)

    @staticmethod
    def mod_is(key: str, revision: int) -> Compare:
        """True when ``key`` was last written at ``revision`` (0: does not exist)."""
        return Compare(key, "mod", "==", revision)


@dataclasses.dataclass(frozen=True)
class Op:
    """A transaction operation: put, delete (one key or a prefix) or get (one key or a prefix)."""

    kind: Literal["put", "delete", "get"]
    key: str
    value: bytes = b""
    lease: int = 0
    prefix: bool = False

    @staticmethod
    def put(key: str, value: bytes | str, lease: int = 0) -> Op:
        """Put ``value`` at ``key``."""
        return Op("put", key, value.encode() if isinstance(value, str) else value, lease)

    @staticmethod
    def delete(key: str, prefix: bool = False) -> Op:
        """Delete ``key`` (or every key under it with ``prefix``)."""
        return Op("delete", key, prefix=prefix)

    @staticmethod
    def get(key: str, prefix: bool = False) -> Op:
        """Read ``key`` (or every key under it with ``prefix``) inside the transaction."""
        return Op("get", key, prefix=prefix)


@dataclasses.dataclass(frozen=True)
class TxnResult:
    """Outcome of :meth:`Store.txn`. ``responses`` has one entry per executed op: for a get,
    the list of key-values; for a put, an empty list; for a delete, the deleted key-values."""

    succeeded: bool
    revision: int
    responses: tuple[tuple[KeyValue, ...], ...] = ()


class Watch(abc.ABC):
    """An open watch: an async iterator of events, closed with :meth:`close` or ``async with``.

    Iteration raises :class:`~shipmate.errors.CompactedError` if the start revision was
    compacted, and :class:`~shipmate.errors.StoreError` if the watch broke beyond recovery
    (consumers then re-read and watch again).
    """

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    @abc.abstractmethod
    async def __anext__(self) -> Event: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop watching; pending iteration ends with ``StopAsyncIteration``."""

    async def __aenter__(self) -> Watch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Store(abc.ABC):
    """Keys with revisions, transactions, watches and leases."""

    name: str = "store"
    #: Most compares (or operations) one transaction may carry: etcd's default
    #: ``--max-txn-ops``. Writers that batch (the scheduler) split their work to fit.
    max_txn_ops: int = 128

    @abc.abstractmethod
    async def get(self, key: str) -> KeyValue | None:
        """The current value of ``key``, or None."""

    @abc.abstractmethod
    async def range(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key starting with ``prefix``, sorted by key, and the store revision read at."""

    @abc.abstractmethod
    async def put(self, key: str, value: bytes | str, *, lease: int = 0) -> int:
        """Write ``key``; returns the new store revision. Durable when it returns."""

    @abc.abstractmethod
    async def delete(self, key: str, *, prefix: bool = False) -> int:
        """Delete ``key`` (or all keys under the prefix); returns the number deleted."""

    @abc.abstractmethod
    async def txn(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        """Atomically: if every compare holds, run ``success``, else ``failure``."""

    @abc.abstractmethod
    async def revision(self) -> int:
        """The current store revision."""

    @abc.abstractmethod
    async def watch(self, prefix: str, *, start_revision: int | None = None) -> Watch:
        """Watch keys under ``prefix``. With ``start_revision``, deliver every event whose
        revision is >= it (history), then live events; without, only events after now."""

    @abc.abstractmethod
    async def compact(self, revision: int) -> None:
        """Drop history before ``revision``; watches from earlier revisions then fail."""

    @abc.abstractmethod
    async def grant(self, ttl: float) -> int:
        """Create a lease living ``ttl`` seconds unless kept alive; returns its ID (> 0)."""

    @abc.abstractmethod
    async def keepalive(self, lease: int) -> float:
        """Refresh a lease to its full TTL; returns the TTL. Raises LeaseNotFoundError."""

    @abc.abstractmethod
    async def revoke(self, lease: int) -> None:
        """End a lease now, deleting its keys. Unknown leases are ignored."""

    @abc.abstractmethod
    async def time_to_live(self, lease: int) -> float | None:
        """Seconds the lease has left, or None if it does not exist."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and background tasks."""

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # helpers shared by all backends -------------------------------------------------------

    async def create(self, key: str, value: bytes | str, *, lease: int = 0) -> bool:
        """Put ``key`` only if it does not exist; True if it was created."""
        res = await self.txn([Compare.missing(key)], [Op.put(key, value, lease)])
        return res.succeeded
