"""The daemon's own metrics: counters and histograms kept in memory, rendered in Prometheus'
text exposition format (version 0.0.4) for ``GET /metrics`` (:mod:`shipmate.web.metrics`).

Deliberately tiny and dependency-free (no ``prometheus_client``): a metric is a name, a help
text, fixed label names and a value (or buckets) per label set. Every metric the daemon keeps
is declared once, at the bottom of this module, so the names and their help are in one place
(docs/metrics.md lists them). The subsystems record with one line at the spot where the thing
happens (``DEPLOY_SECONDS.time(app=app)`` around a deploy); one daemon is one process, so the
module-level :data:`REGISTRY` is that daemon's.

Pure: no I/O, no asyncio; :meth:`Histogram.time` reads ``time.monotonic`` only.
"""

from __future__ import annotations

import bisect
import math
import re
import time
from collections.abc import Iterable, Sequence
from types import TracebackType

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
#: Seconds, from a fast router reload to a slow build (Prometheus' defaults stop at 10 s).
SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
LabelValues = tuple[str, ...]


def escape_label(value: str) -> str:
    """A label value as the text format quotes it (backslash, double quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value: integers without a fraction, infinities as ``+Inf``/``-Inf``."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{escape_label(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        if not _NAME.fullmatch(name):
            raise ValueError(f"bad metric name {name!r}")
        for label in labelnames:
            if not _LABEL.fullmatch(label) or label.startswith("__") or label == "le":
                raise ValueError(f"bad label name {label!r} of {name}")
        self.name, self.help, self.labelnames = name, help, tuple(labelnames)

    def _key(self, labels: dict[str, str]) -> LabelValues:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {sorted(labels)}")
        return tuple(str(labels[n]) for n in self.labelnames)

    def header(self) -> list[str]:
        """The ``# HELP`` and ``# TYPE`` lines."""
        help_text = self.help.replace("\\", "\\\\").replace("\n", "\\n")
        return [f"# HELP {self.name} {help_text}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> list[str]:
        """The sample lines, in a stable order."""
        raise NotImplementedError


class Counter(_Metric):
    """A count that only goes up (``*_total``)."""

    kind = "counter"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help, labelnames)
        self.values: dict[LabelValues, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        """Add ``amount`` (>= 0) to the count of these labels."""
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = self._key(labels)
        self.values[key] = self.values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        """The current count of these labels (0 when never counted)."""
        return self.values.get(self._key(labels), 0.0)

    def samples(self) -> list[str]:
        """One line per label set."""
        return [f"{self.name}{_labels(self.labelnames, k)} {format_value(v)}"
                for k, v in sorted(self.values.items())]


class Series:
    """One label set of a histogram: counts per bucket (not cumulative), sum, count.
    :meth:`Histogram.labels` hands one out so a hot path observes without looking up its
    labels each time."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Count one observation of ``value``."""
        # The first bound >= value; the last bound is +Inf, so one always matches.
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= it) per bucket, ending with +Inf."""
        running, out = 0, []
        for bound, n in zip(self.bounds, self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


class Histogram(_Metric):
    """Observations counted into buckets (``_bucket{le=...}``, ``_sum``, ``_count``)."""

    kind = "histogram"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = (),
                 buckets: Iterable[float] = SECONDS_BUCKETS) -> None:
        super().__init__(name, help, labelnames)
        bounds = sorted(float(b) for b in buckets if not math.isinf(b))
        if not bounds or len(set(bounds)) != len(bounds):
            raise ValueError(f"{name}: buckets must be distinct numbers")
        self.buckets = (*bounds, math.inf)
        self.series: dict[LabelValues, Series] = {}

    def labels(self, **labels: str) -> Series:
        """The series of these labels (made empty on first use), to observe into directly."""
        key = self._key(labels)
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = Series(self.buckets)
        return series

    def observe(self, value: float, **labels: str) -> None:
        """Count one observation of ``value`` under these labels."""
        self.labels(**labels).observe(value)

    def count(self, **labels: str) -> int:
        """How many observations these labels have."""
        series = self.series.get(self._key(labels))
        return series.count if series else 0

    def time(self, **labels: str) -> Timer:
        """A context manager (``with`` or ``async with``) observing the seconds its block
        takes. If ``outcome`` is one of the labels and not given, it is set on exit: ``ok``,
        ``failed`` (an Exception) or ``cancelled`` (cancellation, interrupts)."""
        return Timer(self, labels)

    def samples(self) -> list[str]:
        """Cumulative buckets, then sum and count, per label set."""
        lines = []
        for key, s in sorted(self.series.items()):
            for bound, running in s.cumulative():
                le = f'le="{format_value(bound)}"'
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, le)} {running}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, key)} {format_value(s.sum)}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, key)} {s.count}")
        return lines


class Timer:
    """Times a block into a :class:`Histogram` (see :meth:`Histogram.time`)."""

    def __init__(self, histogram: Histogram, labels: dict[str, str]) -> None:
        self.histogram, self.labels = histogram, dict(labels)
        self.began = 0.0

    def __enter__(self) -> Timer:
        self.began = time.monotonic()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        labels = dict(self.labels)
        if "outcome" in self.histogram.labelnames and "outcome" not in labels:
            labels["outcome"] = outcome_of(exc)
        self.histogram.observe(time.monotonic() - self.began, **labels)

    async def __aenter__(self) -> Timer:
        return self.__enter__()

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(kind, exc, tb)


def outcome_of(exc: BaseException | None) -> str:
    """``ok``, ``failed`` (an Exception) or ``cancelled`` (anything else: cancellation)."""
    if exc is None:
        return "ok"
    return "failed" if isinstance(exc, Exception) else "cancelled"


class Registry:
    """The metrics of one process, rendered together."""

    def __init__(self) -> None:
        self.metrics: dict[str, _Metric] = {}

    def _add(self, metric: _Metric) -> None:
        if metric.name in self.metrics:
            raise ValueError(f"metric {metric.name} is declared twice")
        self.metrics[metric.name] = metric

    def counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Counter:
        """Declare a counter."""
        metric = Counter(name, help, labelnames)
        self._add(metric)
        return metric

    def histogram(self, name: str, help: str, labelnames: Sequence[str] = (),
                  buckets: Iterable[float] = SECONDS_BUCKETS) -> Histogram:
        """Declare a histogram."""
        metric = Histogram(name, help, labelnames, buckets)
        self._add(metric)
        return metric

    def render(self) -> str:
        """Every metric in the text format (a metric with no samples yet still has its
        HELP and TYPE, so a scraper knows it exists)."""
        lines: list[str] = []
        for metric in self.metrics.values():
            lines += metric.header()
            lines += metric.samples()
        return "\n".join(lines) + "\n" if lines else ""


#: This process's metrics (the daemon's: one per machine).
REGISTRY = Registry()

DEPLOY_SECONDS = REGISTRY.histogram(
    "shipmate_deploy_duration_seconds",
    "deploys of a release (push, config change, scale, restart, rollback), from the deploy "
    "lock to the switch, by app and outcome", ("app", "outcome"))
BUILD_SECONDS = REGISTRY.histogram(
    "shipmate_build_duration_seconds", "image builds of a git push, by app and outcome",
    ("app", "outcome"))
HEALTH_CHECK_SECONDS = REGISTRY.histogram(
    "shipmate_health_check_duration_seconds",
    "health checks of a deploy's new instances, by app and outcome", ("app", "outcome"))
ROUTER_RELOADS = REGISTRY.counter(
    "shipmate_router_reloads_total",
    "nginx configurations applied (ok) or refused (failed) by this machine's router",
    ("outcome",))
ROUTER_RELOAD_SECONDS = REGISTRY.histogram(
    "shipmate_router_reload_duration_seconds",
    "time to render, check and load a changed nginx configuration", (),
    (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
SCHEDULER_PLACEMENTS = REGISTRY.counter(
    "shipmate_scheduler_placements_total",
    "units the scheduler (while leader on this machine) started on or stopped from machines",
    ("action",))
SCHEDULER_RECONCILE_SECONDS = REGISTRY.histogram(
    "shipmate_scheduler_reconcile_duration_seconds",
    "the scheduler's passes (read, plan, write placements), by outcome", ("outcome",),
    (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
AGENT_UNIT_RESTARTS = REGISTRY.counter(
    "shipmate_agent_unit_restarts_total",
    "restarts of this machine's units by their Restart= policy: process units (service) by "
    "the agent, container units (container) by Docker", ("kind",))
EVENTS_RECORDED = REGISTRY.counter(
    "shipmate_events_recorded_total", "audit events recorded by this daemon, by outcome",
    ("outcome",))
STORE_REQUEST_SECONDS = REGISTRY.histogram(
    "shipmate_store_request_duration_seconds",
    "requests to the store (get, range, put, delete, txn, revision, watch set-up, leases), "
    "by backend and operation", ("backend", "op"),
    (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
HTTP_REQUESTS = REGISTRY.counter(
    "shipmate_http_requests_total",
    "HTTP requests this machine's router answered for an app, by app and status class "
    "(1xx..5xx), from nginx's access log", ("app", "class"))
HTTP_REQUEST_SECONDS = REGISTRY.histogram(
    "shipmate_http_request_seconds",
    "time nginx took to answer an app's requests ($request_time: first byte read to last "
    "byte sent), by app", ("app",),
    (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0))
