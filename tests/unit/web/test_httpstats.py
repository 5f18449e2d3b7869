"""One app's HTTP numbers for the dashboard's graphs: sampled from the very metrics /metrics
serves, turned into rates per interval (requests, 5xx, mean and 95th percentile time) as
Prometheus' rate() and histogram_quantile() would, in bounded memory."""

from __future__ import annotations

import math
import re

import pytest

from shipmate import metrics
from shipmate.router.accesslog import Hit, record
from shipmate.web.httpstats import Sample, Sampler, quantile, rates

T0 = 1_700_000_000.0


def _fresh() -> tuple[metrics.Counter, metrics.Histogram]:
    """The two metrics as the daemon declares them, empty."""
    return (metrics.Counter(metrics.HTTP_REQUESTS.name, "", ("app", "class")),
            metrics.Histogram(metrics.HTTP_REQUEST_SECONDS.name, "", ("app",),
                              metrics.HTTP_REQUEST_SECONDS.buckets))


def _exposed(app: str) -> dict[str, float]:
    """What /metrics shows for ``app``: requests per class, and the latency count and sum."""
    text = metrics.REGISTRY.render()
    out = {m[1]: float(m[2]) for m in re.finditer(
        rf'shipmate_http_requests_total{{app="{app}",class="(\w+)"}} (\S+)', text)}
    for what in ("count", "sum"):
        hit = re.search(rf'shipmate_http_request_seconds_{what}{{app="{app}"}} (\S+)', text)
        assert hit
        out[what] = float(hit[1])
    return out


def test_the_sampler_reads_what_metrics_serves_for_each_app() -> None:
    sampler = Sampler()  # the daemon's own metrics, as the dashboard uses them
    for status, secs in ((200, 0.004), (200, 0.02), (404, 0.02), (502, 0.3)):
        record(Hit("stats-app", status, secs, T0))
    record(Hit("stats-other", 200, 9.0, T0))
    sampler.sample(T0)
    last = sampler.of("stats-app")[-1]
    exposed = _exposed("stats-app")
    assert last.classes == (0, exposed["2xx"], 0, exposed["4xx"], exposed["5xx"]) == (
        0, 2, 0, 1, 1)
    assert last.buckets[-1] == exposed["count"] == 4
    assert last.seconds == pytest.approx(exposed["sum"]) and last.errors == 1
    assert sampler.of("stats-other")[-1].requests == 1 and sampler.of("stats-none") == []


def test_rates_per_interval_from_two_samples_in_a_row() -> None:
    requests, seconds = _fresh()
    sampler = Sampler(requests, seconds)
    sampler.sample(T0)  # nothing counted yet: no app has a sample
    for t in (10, 20, 30):
        requests.inc(50, app="web", **{"class": "2xx"})
        requests.inc(10, app="web", **{"class": "5xx"})
        for i in range(60):
            seconds.observe(0.02 if i < 54 else 0.4, app="web")
        sampler.sample(T0 + t)
    samples = sampler.of("web")
    # first seen at T0 + 10: a zero sample at T0, so the first interval has a rate at once
    assert [s.time for s in samples] == [T0, T0 + 10, T0 + 20, T0 + 30]
    got = rates(samples, sampler.bounds)
    assert [(r.time, r.requests, r.errors) for r in got] == [
        (T0 + t, 6.0, 1.0) for t in (10, 20, 30)]
    assert got[0].mean == pytest.approx((54 * 0.02 + 6 * 0.4) / 60)
    assert got[0].p95 is not None and 0.25 < got[0].p95 <= 0.5  # 6 of 60 in (0.25, 0.5]


def test_an_idle_interval_has_no_time_and_the_first_sample_is_a_baseline() -> None:
    requests, seconds = _fresh()
    requests.inc(5, app="web", **{"class": "2xx"})
    seconds.observe(0.1, app="web")
    sampler = Sampler(requests, seconds)
    sampler.sample(T0)
    sampler.sample(T0 + 10)
    samples = sampler.of("web")
    assert len(samples) == 2 and samples[1].buckets is samples[0].buckets  # shared: cheap
    [idle] = rates(samples, sampler.bounds)
    assert (idle.requests, idle.errors, idle.mean, idle.p95) == (0.0, 0.0, None, None)


def test_samples_are_bounded_and_a_total_that_went_down_counts_from_zero() -> None:
    requests, seconds = _fresh()
    sampler = Sampler(requests, seconds, keep=3)
    for t in range(10):
        requests.inc(1, app="web", **{"class": "2xx"})
        sampler.sample(T0 + t)
    assert [s.time for s in sampler.of("web")] == [T0 + 7, T0 + 8, T0 + 9]
    restarted = [Sample(T0, (0, 100, 0, 0, 0)), Sample(T0 + 10, (0, 20, 0, 0, 0))]
    assert rates(restarted, ())[0].requests == 2.0
    assert rates([Sample(T0), Sample(T0)], ()) == []  # no time between: no rate


def test_quantiles_interpolate_within_a_bucket() -> None:
    buckets = [(0.1, 10), (0.2, 30), (math.inf, 40)]
    assert quantile(buckets, 0.25) == pytest.approx(0.1)
    assert quantile(buckets, 0.5) == pytest.approx(0.15)
    assert quantile(buckets, 0.99) == pytest.approx(0.2)  # in +Inf: the highest finite bound
    assert quantile(buckets, 0.0) == pytest.approx(0.0)
    assert quantile([(0.1, 0), (math.inf, 0)], 0.5) is None
    assert quantile(buckets, 1.5) is None
