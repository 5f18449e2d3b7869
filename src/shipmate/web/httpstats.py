"""Per-app HTTP numbers for the dashboard: what ``/metrics`` carries for one app
(``shipmate_http_requests_total``, ``shipmate_http_request_seconds``) and its last hour minute
by minute, in one frozen value. Pure: it reads this daemon's in-memory metrics and history
(fed by the router's access log, :mod:`shipmate.router.accesslog`); no I/O.

The numbers are this machine's router's, since the daemon started: with several machines,
each routes a share of the requests (a scraper sums them; the dashboard shows this one's).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence

from shipmate import metrics
from shipmate.router.accesslog import CLASSES, HISTORY, History, Minute


@dataclasses.dataclass(frozen=True)
class AppHttpSummary:
    """One app's requests and latency, as this machine's router saw them."""

    app: str
    requests: Mapping[str, int]  # status class ("1xx".."5xx") -> requests, every class present
    buckets: tuple[tuple[float, int], ...]  # (upper bound in seconds, requests <= it), to +Inf
    seconds: float  # the sum of every request's time
    minutes: tuple[Minute, ...]  # the last hour, oldest first, idle minutes as zeros

    @property
    def total(self) -> int:
        """Every request counted."""
        return sum(self.requests.values())

    @property
    def mean(self) -> float | None:
        """Mean request time in seconds (None without requests)."""
        count = self.buckets[-1][1] if self.buckets else 0
        return self.seconds / count if count else None

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) of request time, estimated from the buckets."""
        return quantile(self.buckets, q)


def app_http_summary(app: str, *, now: float | None = None,
                     history: History | None = None) -> AppHttpSummary:
    """``app``'s numbers (zeros for an app nothing was counted for)."""
    requests = {c: int(metrics.HTTP_REQUESTS.values.get((app, c), 0)) for c in CLASSES}
    series = metrics.HTTP_REQUEST_SECONDS.series.get((app,))
    buckets = tuple(series.cumulative()) if series else ()
    recent = (HISTORY if history is None else history).series(
        app, time.time() if now is None else now)
    return AppHttpSummary(app, requests, buckets, series.sum if series else 0.0,
                          tuple(recent))


def quantile(buckets: Sequence[tuple[float, int]], q: float) -> float | None:
    """The ``q`` quantile of cumulative ``buckets``, interpolated linearly within the bucket
    it falls in, as Prometheus' ``histogram_quantile`` does (the +Inf bucket answers with
    the highest finite bound). None without observations."""
    if not buckets or buckets[-1][1] == 0 or not 0 <= q <= 1:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound
