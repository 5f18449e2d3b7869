"""Per-app request and latency graphs, drawn as inline SVG from the daemon's own metrics.

The metrics (:mod:`shipmate.metrics`) are running totals; :class:`Sampler` keeps one sample
of them every :data:`INTERVAL` seconds for the last :data:`KEEP` samples, and the graphs
show the differences: requests per second (and 5xx per second) and the mean latency in
each interval. Which metrics hold the numbers is found by their shape, not their name, so
the router's request metrics are drawn whatever they end up called: a counter with an
``app`` label whose name ends in ``requests_total`` (a label ``status``, ``code`` or
``class`` starting with 5 marks errors), and a histogram with an ``app`` label whose name
has ``request`` in it and ends in ``seconds``. With neither, a graph says "no data".

Only :meth:`Sampler.sample` reads the registry; :func:`series` and :func:`svg` are pure.
"""

from __future__ import annotations

import collections
import dataclasses
import html
import itertools
from collections.abc import Sequence

from shipmate import metrics

INTERVAL = 10.0
KEEP = 90  # 15 minutes
_STATUS_LABELS = ("status", "code", "class", "status_class")


@dataclasses.dataclass(frozen=True)
class Sample:
    """One app's running totals at one time."""

    time: float
    requests: float
    errors: float  # 5xx
    latency_sum: float
    latency_count: float


def _counter(registry: metrics.Registry) -> metrics.Counter | None:
    for m in registry.metrics.values():
        if isinstance(m, metrics.Counter) and "app" in m.labelnames \
                and m.name.endswith("requests_total"):
            return m
    return None


def _histogram(registry: metrics.Registry) -> metrics.Histogram | None:
    for m in registry.metrics.values():
        if isinstance(m, metrics.Histogram) and "app" in m.labelnames \
                and "request" in m.name and m.name.endswith("seconds"):
            return m
    return None


def totals(registry: metrics.Registry, now: float) -> dict[str, Sample]:
    """Every app's running totals in ``registry`` now."""
    out: dict[str, list[float]] = {}
    counter, hist = _counter(registry), _histogram(registry)
    if counter is not None:
        app_i = counter.labelnames.index("app")
        status_i = next((counter.labelnames.index(n) for n in _STATUS_LABELS
                         if n in counter.labelnames), None)
        for key, value in counter.values.items():
            acc = out.setdefault(key[app_i], [0.0, 0.0, 0.0, 0.0])
            acc[0] += value
            if status_i is not None and key[status_i].startswith("5"):
                acc[1] += value
    if hist is not None:
        app_i = hist.labelnames.index("app")
        for key, series in hist.series.items():
            acc = out.setdefault(key[app_i], [0.0, 0.0, 0.0, 0.0])
            acc[2] += series.sum
            acc[3] += series.count
    return {app: Sample(now, *acc) for app, acc in out.items()}


class Sampler:
    """The last :data:`KEEP` samples of each app's totals (the dashboard's background
    task calls :meth:`sample` every :data:`INTERVAL` seconds)."""

    def __init__(self, registry: metrics.Registry | None = None) -> None:
        self.registry = registry or metrics.REGISTRY
        self.samples: dict[str, collections.deque[Sample]] = {}

    def sample(self, now: float) -> None:
        """Take one sample of every app's totals."""
        for app, s in totals(self.registry, now).items():
            self.samples.setdefault(app, collections.deque(maxlen=KEEP)).append(s)

    def of(self, app: str) -> list[Sample]:
        """``app``'s samples, oldest first."""
        return list(self.samples.get(app, ()))


def series(samples: Sequence[Sample]) -> dict[str, list[tuple[float, float]]]:
    """Per interval: requests/s, 5xx/s and mean latency (ms), as (time, value) points. A
    total that went down (a restarted daemon) starts a new count instead of a negative."""
    out: dict[str, list[tuple[float, float]]] = {"rps": [], "errors": [], "latency": []}
    def delta(x: float, y: float) -> float:
        return y - x if y >= x else y

    for a, b in itertools.pairwise(samples):
        span = b.time - a.time
        if span <= 0:
            continue
        out["rps"].append((b.time, delta(a.requests, b.requests) / span))
        out["errors"].append((b.time, delta(a.errors, b.errors) / span))
        n = delta(a.latency_count, b.latency_count)
        out["latency"].append((b.time, 1000 * delta(a.latency_sum, b.latency_sum) / n
                               if n else 0.0))
    return out


def _path(points: Sequence[tuple[float, float]], t0: float, span: float, top: float,
          width: int, height: int) -> str:
    coords = [(round((t - t0) / span * width, 1), round(height - v / top * height, 1))
              for t, v in points]
    return "M" + " L".join(f"{x},{y}" for x, y in coords)


def svg(title: str, lines: dict[str, Sequence[tuple[float, float]]], unit: str,
        width: int = 360, height: int = 90) -> str:
    """A small line graph of ``lines`` (name -> points) with its title and top value;
    "no data" when there are fewer than two points."""
    label = html.escape(title)
    drawn = {k: v for k, v in lines.items() if len(v) >= 2}
    if not drawn:
        return (f'<svg class="graph" role="img" aria-label="{label}: no data" '
                f'viewBox="0 0 {width} {height + 20}" width="{width}" height="{height + 20}">'
                f'<text x="4" y="14" class="title">{label}</text>'
                f'<text x="{width // 2}" y="{height // 2 + 14}" text-anchor="middle" '
                f'class="nodata">no data</text></svg>')
    times = [t for pts in drawn.values() for t, _ in pts]
    t0, span = min(times), (max(times) - min(times)) or 1.0
    top = max(max(v for _, v in pts) for pts in drawn.values()) or 1.0
    paths = "".join(
        f'<path class="line line-{i}" fill="none" stroke-width="1.5" '
        f'd="{_path(pts, t0, span, top, width, height)}"><title>{html.escape(name)}</title>'
        f'</path>' for i, (name, pts) in enumerate(drawn.items()))
    return (f'<svg class="graph" role="img" aria-label="{label}" '
            f'viewBox="0 -20 {width} {height + 20}" width="{width}" height="{height + 20}">'
            f'<text x="4" y="-6" class="title">{label} (max {top:.3g} {html.escape(unit)})'
            f'</text><line x1="0" y1="{height}" x2="{width}" y2="{height}" class="axis"/>'
            f'{paths}</svg>')


def app_graphs(samples: Sequence[Sample]) -> list[str]:
    """The app page's two graphs."""
    s = series(samples)
    return [svg("requests/s", {"requests": s["rps"], "5xx": s["errors"]}, "req/s"),
            svg("mean latency", {"latency": s["latency"]}, "ms")]
