"""Follow-on hits (:mod:`followloop`) over the cache's storage and routes: which cached body
answers a plain GET as it is, looked up from a worker thread, and counting what workers send."""

from __future__ import annotations

import collections
import time

from shipmate.cache import followloop, hits
from shipmate.cache.policy import Action, Cached, Kind, Refused, decide
from shipmate.cache.routes import Rewrite, Routes, cached_route, is_admin
from shipmate.cache.stats import Counters, Stats
from shipmate.cache.storage import Entry, Storage

MEMO_SIZE = 4096


class CachedFollowOns:
    """:class:`hits.FollowOns` for the cache: the same routes, allowlist and freshness rules
    as a request through aiohttp, for bodies large enough to be sent with sendfile.

    Workers report what they send into a queue (a deque's append is thread-safe) instead of
    waking the event loop for each body; :meth:`apply` counts it on the loop, when a worker
    gives its connection back and before stats are read, so counts are current whenever
    they are looked at."""

    def __init__(self, storage: Storage, routes: Routes, stats: Stats,
                 fresh_seconds: float) -> None:
        self.storage = storage
        self.routes = routes
        self.stats = stats
        self.fresh_seconds = fresh_seconds
        self._sent: collections.deque[tuple[Counters, int, followloop.Sent | None]] = (
            collections.deque())
        # (target, Accept) -> the entry and body found for it, while that entry is current
        self._found: dict[tuple[str, str], tuple[Entry, followloop.Body]] = {}

    def lookup(self, target: str, accept: str) -> followloop.Body | None:
        """The body answering ``target`` if it is a hit served as it is, else None (for
        aiohttp: refusals, admin pages, rewritten indexes, small bodies, misses, stale
        indexes). Reads shared state only: it runs in worker threads."""
        found = self._found.get((target, accept))
        if found is not None:
            known, body = found
            if self.storage.get(known.key) is known and self._fresh(known):
                return body
        if is_admin(target):
            return None
        try:
            routed = cached_route(target, accept, self.routes)
        except Refused:
            return None
        if routed.rewrite is not Rewrite.NONE:
            return None
        entry = self.storage.get(routed.key)
        if entry is None or entry.size <= hits.SMALL_MAX or not self._fresh(entry):
            return None
        body = followloop.Body(str(self.storage.path(entry)), entry.content_type, entry.key,
                             routed.fmt)
        if len(self._found) >= MEMO_SIZE:
            self._found.clear()
        self._found[(target, accept)] = (entry, body)
        return body

    def _fresh(self, entry: Entry) -> bool:
        if entry.kind == Kind.IMMUTABLE.value:
            return True
        cached = Cached(Kind(entry.kind), entry.fetched_at)
        return decide(cached, time.time(), self.fresh_seconds) is Action.HIT

    def reporter(self, counters: Counters, size: int) -> followloop.Report:
        """A report for one response (any thread): its own body, then its follow-ons."""
        def report(sent: followloop.Sent | None) -> None:
            if sent is None:
                self._sent.append((counters, size, None))
            else:
                self._sent.append((self.stats.of(sent.fmt), sent.size, sent))
        return report

    def apply(self) -> None:
        """Count what was reported (on the event loop): bytes for every body; a request and
        a hit for each follow-on, whose body is also marked used."""
        while self._sent:
            counters, size, sent = self._sent.popleft()
            counters.bytes_from_cache += size
            counters.bytes_served += size
            if sent is not None:
                self.stats.follow_ons += 1
                counters.requests += 1
                counters.hits += 1
                entry = self.storage.get(sent.key)
                if entry is not None:
                    self.storage.touch(entry)
