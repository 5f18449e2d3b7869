"""Stats renderings and the build settings."""

from __future__ import annotations

from shipmate.cache import build_settings
from shipmate.cache.stats import Stats, html_report, prometheus


def test_snapshot_and_renderings() -> None:
    stats = Stats()
    stats.of("apt").hits += 3
    stats.of("npm").bytes_from_upstream += 10
    stats.of("unknown").misses += 1  # counts as apt
    stats.refused += 2
    stats.over_cap += 5
    snap = stats.snapshot({"entries": 4, "bytes": 100})
    assert snap["formats"]["apt"]["hits"] == 3 and snap["formats"]["apt"]["misses"] == 1
    assert snap["total"]["bytes_from_upstream"] == 10
    text = prometheus(snap)
    assert 'shipmate_cache_hits_total{format="apt"} 3' in text
    assert "shipmate_cache_refused_total 2" in text
    assert "shipmate_cache_over_cap_total 5" in text
    assert "shipmate_cache_storage_entries 4" in text
    assert "# TYPE shipmate_cache_hits_total counter" in text
    page = html_report(snap)
    assert page.startswith("<!DOCTYPE html>") and "<th>npm</th>" in page
    assert "connection cap: 5" in page


def test_build_settings() -> None:
    args = build_settings("172.17.0.1", 3142)
    assert args == {
        "APT_PROXY": "http://172.17.0.1:3142",
        "PIP_INDEX_URL": "http://172.17.0.1:3142/pypi/simple/",
        "PIP_TRUSTED_HOST": "172.17.0.1",
        "NPM_CONFIG_REGISTRY": "http://172.17.0.1:3142/npm/",
        "SHIPMATE_CACHE_URL": "http://172.17.0.1:3142",
    }
    assert "http_proxy" not in args
