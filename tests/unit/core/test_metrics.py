"""The metrics registry renders Prometheus' text format that a real parser (prometheus_client's)
and a strict one of our own both accept, with cumulative buckets and escaped labels."""

from __future__ import annotations

import asyncio
import math
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shipmate import metrics
from shipmate.cache import stats as cache_stats
from shipmate.metrics import Registry

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
                     r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*)?\})? '
                     r'(-?[0-9.e+-]+|[+-]Inf|NaN)$')
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("",), "gauge": ("",)}


def strict_parse(text: str) -> dict[str, list[tuple[str, str, float]]]:
    """A strict reading of the text format: every sample belongs to a metric whose TYPE came
    first, names and labels are well formed, each TYPE appears once, the text ends with a
    newline. Returns metric -> [(sample name, labels, value)]."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    samples: dict[str, list[tuple[str, str, float]]] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types, f"TYPE twice: {name}"
            types[name] = kind
            samples[name] = []
            continue
        if line.startswith("# HELP ") or not line:
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.group(1), (match.group(2) or "{}")[1:-1], match.group(3)
        owner = next((m for m, k in types.items() for s in _SUFFIXES[k] if name == m + s),
                     None)
        assert owner is not None, f"sample before its TYPE: {line!r}"
        samples[owner].append((name, labels, float(value)))
    return samples


def test_histogram_buckets_are_cumulative_and_parse() -> None:
    reg = Registry()
    hist = reg.histogram("shipmate_test_seconds", "a test", ("app", "outcome"),
                         buckets=(1, 5, 10))
    for value in (0.5, 3, 3, 7, 60):
        hist.observe(value, app="web", outcome="ok")
    text = reg.render()
    assert 'shipmate_test_seconds_bucket{app="web",outcome="ok",le="1"} 1' in text
    assert 'shipmate_test_seconds_bucket{app="web",outcome="ok",le="5"} 3' in text
    assert 'shipmate_test_seconds_bucket{app="web",outcome="ok",le="10"} 4' in text
    assert 'shipmate_test_seconds_bucket{app="web",outcome="ok",le="+Inf"} 5' in text
    assert 'shipmate_test_seconds_count{app="web",outcome="ok"} 5' in text
    assert 'shipmate_test_seconds_sum{app="web",outcome="ok"} 73.5' in text
    family = next(text_string_to_metric_families(text))
    assert family.type == "histogram"
    buckets = [s.value for s in family.samples if s.name.endswith("_bucket")]
    assert buckets == sorted(buckets)
    strict_parse(text)


def test_label_values_are_escaped() -> None:
    reg = Registry()
    counter = reg.counter("shipmate_odd_total", "odd labels", ("name",))
    counter.inc(name='a"b\\c\nd')
    text = reg.render()
    assert 'shipmate_odd_total{name="a\\"b\\\\c\\nd"} 1' in text
    family = next(text_string_to_metric_families(text))
    assert family.samples[0].labels == {"name": 'a"b\\c\nd'}
    strict_parse(text)


def test_wrong_labels_and_names_are_refused() -> None:
    reg = Registry()
    counter = reg.counter("shipmate_x_total", "x", ("app",))
    with pytest.raises(ValueError, match="takes labels"):
        counter.inc(process="web")
    with pytest.raises(ValueError, match="only goes up"):
        counter.inc(-1, app="a")
    with pytest.raises(ValueError, match="declared twice"):
        reg.counter("shipmate_x_total", "again")
    with pytest.raises(ValueError, match="bad metric name"):
        reg.counter("shipmate-x", "dash")
    with pytest.raises(ValueError, match="bad label name"):
        reg.histogram("shipmate_h", "le is the histogram's own", ("le",))


def test_timer_sets_the_outcome() -> None:
    reg = Registry()
    hist = reg.histogram("shipmate_work_seconds", "work", ("app", "outcome"))
    with hist.time(app="a"):
        pass
    with pytest.raises(RuntimeError), hist.time(app="a"):
        raise RuntimeError("boom")

    async def cancelled() -> None:
        async with hist.time(app="a"):
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancelled())
    assert [hist.count(app="a", outcome=o) for o in ("ok", "failed", "cancelled")] == [1, 1, 1]


def test_values_format() -> None:
    assert metrics.format_value(3.0) == "3"
    assert metrics.format_value(0.25) == "0.25"
    assert metrics.format_value(math.inf) == "+Inf"


def test_the_declared_metrics_and_the_cache_parse_together() -> None:
    """What /metrics serves: the daemon's registry followed by the cache's exposition."""
    metrics.DEPLOY_SECONDS.observe(12.5, app="render-check", outcome="ok")
    snapshot = cache_stats.Stats().snapshot({"entries": 0, "bytes": 0})
    text = metrics.REGISTRY.render() + cache_stats.prometheus(snapshot)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["shipmate_deploy_duration_seconds"].type == "histogram"
    assert "shipmate_router_reloads" in families  # the parser strips _total
    assert "shipmate_cache_requests" in families
    parsed = strict_parse(text)
    assert ("shipmate_deploy_duration_seconds_count", 'app="render-check",outcome="ok"', 1.0) \
        in parsed["shipmate_deploy_duration_seconds"]
