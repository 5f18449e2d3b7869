"""Per-app HTTP numbers for the dashboard's graphs, read from the very metrics ``/metrics``
serves: ``shipmate_http_requests_total{app,class}`` and ``shipmate_http_request_seconds{app}``
(:data:`shipmate.metrics.HTTP_REQUESTS`, :data:`~shipmate.metrics.HTTP_REQUEST_SECONDS`,
fed by the router's access log, :mod:`shipmate.router.accesslog`).

Those metrics are running totals. :class:`Sampler` keeps a copy of each app's totals every
:data:`INTERVAL` seconds for the last :data:`KEEP` samples (:meth:`Sampler.sample` is the one
read of the metrics); :func:`rates` turns two samples in a row into what Prometheus'
``rate()`` and ``histogram_quantile()`` would show for that interval: requests and 5xx per
second, mean and 95th percentile time. Everything but :meth:`Sampler.sample` is pure.

The numbers are this machine's router's, since the daemon started: with several machines,
each routes a share of the requests (a scraper sums them; the dashboard shows this one's).
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
from collections.abc import Sequence

from shipmate import metrics
from shipmate.router.accesslog import CLASSES

INTERVAL = 10.0
KEEP = 90  # 15 minutes
_ZEROS = (0,) * len(CLASSES)


@dataclasses.dataclass(frozen=True)
class Sample:
    """One app's running totals at one time, as ``/metrics`` showed them."""

    time: float
    classes: tuple[int, ...] = _ZEROS  # requests per status class, in CLASSES' order
    buckets: tuple[int, ...] = ()  # cumulative requests per bucket bound, the last is +Inf
    seconds: float = 0.0  # the sum of their times

    @property
    def requests(self) -> int:
        """Every request counted."""
        return sum(self.classes)

    @property
    def errors(self) -> int:
        """The 5xx answers."""
        return self.classes[-1]

    def same_totals(self, other: Sample) -> bool:
        """Whether nothing was counted between ``other`` and this."""
        return (self.classes, self.buckets, self.seconds) == (
            other.classes, other.buckets, other.seconds)


def read(requests: metrics.Counter, seconds: metrics.Histogram,
         now: float) -> dict[str, Sample]:
    """Every app's totals in these two metrics now (``requests`` labelled ``app`` and
    ``class``, ``seconds`` labelled ``app``)."""
    classes: dict[str, list[int]] = {}
    for (app, cls), value in requests.values.items():
        if cls in CLASSES:
            classes.setdefault(app, list(_ZEROS))[CLASSES.index(cls)] = int(value)
    out = {app: Sample(now, tuple(counts)) for app, counts in classes.items()}
    for (app,), series in seconds.series.items():
        out[app] = dataclasses.replace(
            out.get(app, Sample(now)), seconds=series.sum,
            buckets=tuple(itertools.accumulate(series.counts)))
    return out


class Sampler:
    """The last :data:`KEEP` samples of each app's totals (the dashboard's background task
    calls :meth:`sample` every :data:`INTERVAL` seconds)."""

    def __init__(self, requests: metrics.Counter = metrics.HTTP_REQUESTS,
                 seconds: metrics.Histogram = metrics.HTTP_REQUEST_SECONDS,
                 keep: int = KEEP) -> None:
        self.requests, self.seconds, self.keep = requests, seconds, keep
        self.bounds: tuple[float, ...] = seconds.buckets
        self._samples: dict[str, collections.deque[Sample]] = {}
        self._last: float | None = None

    def sample(self, now: float) -> None:
        """Take one sample of every app's totals. An app first seen now had nothing
        counted at the previous sample: it gets a zero sample then, so its first requests
        show as a rate at once (not after one more interval)."""
        for app, new in read(self.requests, self.seconds, now).items():
            kept = self._samples.get(app)
            if kept is None:
                kept = self._samples[app] = collections.deque(maxlen=self.keep)
                if self._last is not None:
                    kept.append(Sample(self._last))
            if kept and new.same_totals(kept[-1]):
                new = dataclasses.replace(kept[-1], time=now)  # shares the tuples: idle is cheap
            kept.append(new)
        self._last = now

    def of(self, app: str) -> list[Sample]:
        """``app``'s samples, oldest first."""
        return list(self._samples.get(app, ()))


@dataclasses.dataclass(frozen=True)
class Rate:
    """What one interval (ending at ``time``) saw: per second, and request times in
    seconds (None in an interval without requests)."""

    time: float
    requests: float
    errors: float
    mean: float | None
    p95: float | None


def rates(samples: Sequence[Sample], bounds: Sequence[float]) -> list[Rate]:
    """One :class:`Rate` per two samples in a row. A total that went down (the metrics
    started again) counts from zero, as Prometheus' ``rate()`` does."""
    out = []
    for a, b in itertools.pairwise(samples):
        span = b.time - a.time
        if span <= 0:
            continue
        buckets = [_delta(x, y) for x, y in
                   itertools.zip_longest(a.buckets, b.buckets, fillvalue=0)]
        count = buckets[-1] if buckets else 0
        out.append(Rate(b.time, _delta(a.requests, b.requests) / span,
                        _delta(a.errors, b.errors) / span,
                        _delta(a.seconds, b.seconds) / count if count else None,
                        quantile(list(zip(bounds, buckets, strict=False)), 0.95)))
    return out


def _delta(before: float, after: float) -> float:
    return after - before if after >= before else after


def quantile(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """The ``q`` quantile (0..1) of cumulative ``buckets`` (upper bound, count), interpolated
    linearly within the bucket it falls in, as Prometheus' ``histogram_quantile`` does (the
    +Inf bucket answers with the highest finite bound). None without observations."""
    if not buckets or buckets[-1][1] <= 0 or not 0 <= q <= 1:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
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
