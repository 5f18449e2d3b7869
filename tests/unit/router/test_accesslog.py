"""The structured access log: each app's server names its app as a literal (never from the
request), lines parse into requests or are skipped, requests count into the per-app metrics
and a bounded per-minute history."""

from __future__ import annotations

import json
import re

import pytest

from shipmate import metrics
from shipmate.router.accesslog import History, Hit, parse_line, record
from shipmate.router.render import RenderOptions, render
from shipmate.router.routes import Endpoint, Route, RouterState, RouteTls

EP = Endpoint("127.0.0.1", 5001, "m1", "web.1")


def _servers(text: str) -> list[str]:
    """The text of each ``server { ... }`` block."""
    return re.findall(r"\n    server \{\n(.*?)\n    \}\n", text, re.S)


def test_every_app_server_sets_its_own_name_and_the_default_server_none() -> None:
    tls = RouteTls("shop-abc.pem", ("shop.test",))
    state = RouterState(80, (Route("shop", ("shop.test", "www.shop.test"), 9001, (EP,), tls),
                             Route("blog", ("blog.test",), None, (EP,))), https_port=443)
    text = render(state)
    assert "log_format shipmate_http escape=json '{\"app\":\"$shipmate_app\"," in text
    assert "access_log logs/http.log shipmate_http if=$shipmate_app;" in text
    servers = _servers(text)
    default = [s for s in servers if "server_name _;" in s]
    assert default and all("set $shipmate_app '';" in s for s in default if "listen 80" in s)
    for server in servers:
        if "server_name _;" in server:
            continue
        names = re.findall(r"set \$shipmate_app (\S+);", server)
        app = "shop" if "shop" in server else "blog"
        assert names == [app], server  # plain, redirect and HTTPS servers alike
    # Nothing of the request (a header, the host, the URI) decides the app.
    assert not re.search(r"set \$shipmate_app \$", text)


def test_a_config_with_no_app_still_defines_the_variable_its_log_uses() -> None:
    text = render(RouterState(80))  # nginx refuses an unknown variable in log_format
    assert "if=$shipmate_app;" in text and "set $shipmate_app '';" in text


def test_the_log_can_be_turned_off() -> None:
    text = render(RouterState(80, (Route("shop", ("shop.test",), None, (EP,)),)),
                  RenderOptions(http_log=False))
    assert "logs/http.log" not in text and "access_log logs/access.log;" in text


def _line(**fields: object) -> bytes:
    data = {"app": "shop", "status": 200, "request_time": 0.012, "upstream_time": "0.011",
            "bytes": 512, "msec": 1700000000.5, **fields}
    return json.dumps(data).encode()


def test_lines_parse_into_requests() -> None:
    assert parse_line(_line()) == Hit("shop", 200, 0.012, 1700000000.5, 0.011)
    retried = parse_line(_line(status=502, upstream_time="0.001, 0.004"))
    assert retried is not None and retried.upstream_seconds == 0.004
    assert retried.status_class == "5xx"
    assert parse_line(_line(upstream_time="")) == Hit("shop", 200, 0.012, 1700000000.5, None)
    assert parse_line(_line(upstream_time="-")).upstream_seconds is None  # type: ignore[union-attr]


@pytest.mark.parametrize("line", [
    b"", b"not json", b'{"app": "shop"}', b'127.0.0.1 - - [x] "GET / HTTP/1.1" 200 5',
    _line(app="../etc"), _line(app=""), _line(app="A" * 5), _line(app="x" * 200),
    _line(status=99), _line(status=600), _line(status="200"), _line(request_time=-1),
    _line(request_time="nan"), _line(msec="soon"), b'["shop", 200]', _line()[:-10],
])
def test_lines_not_ours_are_skipped(line: bytes) -> None:
    assert parse_line(line) is None


def test_a_request_counts_into_the_metrics_by_app_and_class() -> None:
    app = "acc-metrics"
    before = (metrics.HTTP_REQUESTS.value(app=app, **{"class": "2xx"}),
              metrics.HTTP_REQUESTS.value(app=app, **{"class": "5xx"}),
              metrics.HTTP_REQUEST_SECONDS.count(app=app))
    history = History()
    for status in (200, 204, 503):
        record(Hit(app, status, 0.02, 1700000000.0), history)
    assert metrics.HTTP_REQUESTS.value(app=app, **{"class": "2xx"}) == before[0] + 2
    assert metrics.HTTP_REQUESTS.value(app=app, **{"class": "5xx"}) == before[1] + 1
    assert metrics.HTTP_REQUEST_SECONDS.count(app=app) == before[2] + 3
    text = metrics.REGISTRY.render()
    assert f'shipmate_http_requests_total{{app="{app}",class="2xx"}}' in text
    assert f'shipmate_http_request_seconds_bucket{{app="{app}",le="0.025"}}' in text


def test_history_keeps_minutes_per_app_with_idle_minutes_as_zeros() -> None:
    history = History(minutes=5)
    t0 = 1_700_000_040.0  # a minute boundary: 1_700_000_040 = 28_333_334 * 60
    for at, status, secs in ((t0 + 1, 200, 0.1), (t0 + 50, 500, 0.3), (t0 + 130, 200, 0.2)):
        history.add(Hit("shop", status, secs, at))
    series = history.series("shop", now=t0 + 150)
    assert [m.start for m in series] == [int(t0) + 60 * k for k in range(-2, 3)]
    assert [m.requests for m in series] == [0, 0, 2, 0, 1]
    assert series[2].errors == 1 and series[2].slowest == 0.3
    assert series[2].mean == pytest.approx(0.2)
    assert [m.requests for m in history.series("other", now=t0)] == [0] * 5


def test_history_is_bounded_in_minutes_and_apps() -> None:
    history = History(minutes=3, max_apps=2)
    for minute in range(10):
        history.add(Hit("a", 200, 0.1, 60.0 * minute))
    assert [m.requests for m in history.series("a", now=60.0 * 9)] == [1, 1, 1]
    history.add(Hit("a", 200, 0.1, 0.0))  # older than kept: dropped, not an error
    history.add(Hit("b", 200, 0.1, 60.0 * 9))
    history.add(Hit("c", 200, 0.1, 60.0 * 9))  # "a" was idle longest
    assert history.apps() == ["b", "c"]
