"""Follow-on hits (:mod:`sendbody`) over the cache's storage and routes: which cached body
answers a plain GET as it is, looked up from a worker thread, and counting those answered."""

from __future__ import annotations

import time

from shipmate.cache import hits, sendbody
from shipmate.cache.policy import Action, Cached, Kind, Refused, decide
from shipmate.cache.routes import Rewrite, Routes, cached_route, is_admin
from shipmate.cache.stats import Stats
from shipmate.cache.storage import Storage


class CachedFollowOns:
    """:class:`hits.FollowOns` for the cache: the same routes, allowlist and freshness rules
    as a request through aiohttp, for bodies large enough to be sent with sendfile."""

    def __init__(self, storage: Storage, routes: Routes, stats: Stats,
                 fresh_seconds: float) -> None:
        self.storage = storage
        self.routes = routes
        self.stats = stats
        self.fresh_seconds = fresh_seconds

    def lookup(self, target: str, accept: str) -> sendbody.Body | None:
        """The body answering ``target`` if it is a hit served as it is, else None (for
        aiohttp: refusals, admin pages, rewritten indexes, small bodies, misses, stale
        indexes). Reads only: it runs in a worker thread."""
        if is_admin(target):
            return None
        try:
            routed = cached_route(target, accept, self.routes)
        except Refused:
            return None
        if routed.rewrite is not Rewrite.NONE:
            return None
        entry = self.storage.get(routed.key)
        if entry is None or entry.size <= hits.SMALL_MAX:
            return None
        cached = Cached(Kind(entry.kind), entry.fetched_at)
        if decide(cached, time.time(), self.fresh_seconds) is not Action.HIT:
            return None
        return sendbody.Body(str(self.storage.path(entry)), entry.content_type, entry.key,
                             routed.fmt)

    def count(self, sent: sendbody.Sent) -> None:
        """Count a follow-on answered, as the server counts a hit; mark its body used."""
        self.stats.follow_ons += 1
        counters = self.stats.of(sent.fmt)
        counters.requests += 1
        counters.hits += 1
        counters.bytes_from_cache += sent.size
        counters.bytes_served += sent.size
        entry = self.storage.get(sent.key)
        if entry is not None:
            self.storage.touch(entry)
