"""A store that times every request it passes on: ``shipmate_store_request_duration_seconds``
by backend and operation (:mod:`shipmate.metrics`).

:func:`shipmate.store.open.open_store` wraps whichever backend the settings choose, so the
daemon measures SQLite and etcd alike without either backend knowing. The cost per request
is two ``perf_counter`` calls and one bucket search on a series looked up once, here, at
construction (``bench/store.py --backends sqlite,sqlite+metered`` shows it side by side).

What is timed: each call from the caller's side, failures included (a timeout is latency
too). ``watch`` times the set-up only (until the watch is returned), not its life;
``create`` counts as the ``txn`` it is.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from shipmate import metrics
from shipmate.store.base import Compare, KeyValue, Op, Store, TxnResult, Watch

OPERATIONS = ("get", "range", "put", "delete", "txn", "revision", "watch", "compact", "grant",
              "keepalive", "revoke", "time_to_live")


class MeteredStore(Store):
    """``inner`` with each request timed. Attributes a backend has beyond :class:`Store`
    (a SQLite store's ``path``) are reached through to ``inner``."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.name = inner.name
        hist = metrics.STORE_REQUEST_SECONDS
        self._series = {op: hist.labels(backend=inner.name, op=op) for op in OPERATIONS}

    def __getattr__(self, attribute: str) -> Any:
        # Only called for what this class does not define: a backend's own attributes.
        if attribute == "inner":  # not set yet (copy, pickle): no recursion
            raise AttributeError(attribute)
        return getattr(self.inner, attribute)

    async def get(self, key: str) -> KeyValue | None:
        """The current value of ``key``, or None."""
        began = time.perf_counter()
        try:
            return await self.inner.get(key)
        finally:
            self._series["get"].observe(time.perf_counter() - began)

    async def range(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key under ``prefix``, sorted, and the revision read at."""
        began = time.perf_counter()
        try:
            return await self.inner.range(prefix)
        finally:
            self._series["range"].observe(time.perf_counter() - began)

    async def put(self, key: str, value: bytes | str, *, lease: int = 0) -> int:
        """Write ``key``; returns the new revision."""
        began = time.perf_counter()
        try:
            return await self.inner.put(key, value, lease=lease)
        finally:
            self._series["put"].observe(time.perf_counter() - began)

    async def delete(self, key: str, *, prefix: bool = False) -> int:
        """Delete ``key`` (or the keys under it); returns how many went."""
        began = time.perf_counter()
        try:
            return await self.inner.delete(key, prefix=prefix)
        finally:
            self._series["delete"].observe(time.perf_counter() - began)

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op],
                  failure: Sequence[Op] = ()) -> TxnResult:
        """Atomically: if every compare holds, run ``success``, else ``failure``."""
        began = time.perf_counter()
        try:
            return await self.inner.txn(compares, success, failure)
        finally:
            self._series["txn"].observe(time.perf_counter() - began)

    async def revision(self) -> int:
        """The current store revision."""
        began = time.perf_counter()
        try:
            return await self.inner.revision()
        finally:
            self._series["revision"].observe(time.perf_counter() - began)

    async def watch(self, prefix: str, *, start_revision: int | None = None) -> Watch:
        """Watch ``prefix`` (the set-up is timed, not the events)."""
        began = time.perf_counter()
        try:
            return await self.inner.watch(prefix, start_revision=start_revision)
        finally:
            self._series["watch"].observe(time.perf_counter() - began)

    async def compact(self, revision: int) -> None:
        """Drop history before ``revision``."""
        began = time.perf_counter()
        try:
            await self.inner.compact(revision)
        finally:
            self._series["compact"].observe(time.perf_counter() - began)

    async def grant(self, ttl: float) -> int:
        """A new lease of ``ttl`` seconds."""
        began = time.perf_counter()
        try:
            return await self.inner.grant(ttl)
        finally:
            self._series["grant"].observe(time.perf_counter() - began)

    async def keepalive(self, lease: int) -> float:
        """Refresh ``lease``; returns its TTL."""
        began = time.perf_counter()
        try:
            return await self.inner.keepalive(lease)
        finally:
            self._series["keepalive"].observe(time.perf_counter() - began)

    async def revoke(self, lease: int) -> None:
        """End ``lease`` now."""
        began = time.perf_counter()
        try:
            await self.inner.revoke(lease)
        finally:
            self._series["revoke"].observe(time.perf_counter() - began)

    async def time_to_live(self, lease: int) -> float | None:
        """Seconds ``lease`` has left, or None."""
        began = time.perf_counter()
        try:
            return await self.inner.time_to_live(lease)
        finally:
            self._series["time_to_live"].observe(time.perf_counter() - began)

    async def close(self) -> None:
        """Close the backend."""
        await self.inner.close()


def backend(store: Store) -> Store:
    """The backend under ``store`` (itself unless metered): what a check for a backend's own
    type (``isinstance(..., EtcdStore)``) must look at."""
    return store.inner if isinstance(store, MeteredStore) else store
