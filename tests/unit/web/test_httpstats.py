"""One app's HTTP numbers for the dashboard: the same counts and buckets /metrics carries,
quantiles estimated from the buckets, the last hour by minute."""

from __future__ import annotations

import math

import pytest

from shipmate.router.accesslog import History, Hit, record
from shipmate.web.httpstats import app_http_summary, quantile

T0 = 1_700_000_040.0  # a minute boundary


def test_the_summary_carries_what_was_recorded_for_the_app_only() -> None:
    history = History()
    for status, secs in ((200, 0.004), (200, 0.02), (404, 0.02), (502, 0.3)):
        record(Hit("summary-app", status, secs, T0 + 5), history)
    record(Hit("summary-other", 200, 9.0, T0 + 5), history)
    s = app_http_summary("summary-app", now=T0 + 30, history=history)
    assert dict(s.requests) == {"1xx": 0, "2xx": 2, "3xx": 0, "4xx": 1, "5xx": 1}
    assert s.total == 4
    assert s.buckets[-1] == (math.inf, 4) and dict(s.buckets)[0.005] == 1
    assert s.mean == pytest.approx(0.344 / 4)
    assert s.quantile(0.5) is not None and 0.01 < s.quantile(0.5) <= 0.025  # type: ignore[operator]
    assert len(s.minutes) == 60 and s.minutes[-1].requests == 4 and s.minutes[-1].errors == 1


def test_an_app_never_seen_has_zeros() -> None:
    s = app_http_summary("summary-none", now=T0, history=History())
    assert s.total == 0 and s.buckets == () and s.mean is None and s.quantile(0.9) is None
    assert all(m.requests == 0 for m in s.minutes)


def test_quantiles_interpolate_within_a_bucket() -> None:
    buckets = [(0.1, 10), (0.2, 30), (math.inf, 40)]
    assert quantile(buckets, 0.25) == pytest.approx(0.1)
    assert quantile(buckets, 0.5) == pytest.approx(0.15)
    assert quantile(buckets, 0.99) == pytest.approx(0.2)  # in +Inf: the highest finite bound
    assert quantile(buckets, 0.0) == pytest.approx(0.0)
    assert quantile([(0.1, 0), (math.inf, 0)], 0.5) is None
    assert quantile(buckets, 1.5) is None
