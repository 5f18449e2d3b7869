"""The structured access log: each app's server names its app as a literal (never from the
request), lines parse into requests or are skipped, requests count into the per-app metrics."""

from __future__ import annotations

import json
import re

import pytest

from shipmate import metrics
from shipmate.router.accesslog import Hit, parse_line, record
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
    for status in (200, 204, 503):
        record(Hit(app, status, 0.02, 1700000000.0))
    assert metrics.HTTP_REQUESTS.value(app=app, **{"class": "2xx"}) == before[0] + 2
    assert metrics.HTTP_REQUESTS.value(app=app, **{"class": "5xx"}) == before[1] + 1
    assert metrics.HTTP_REQUEST_SECONDS.count(app=app) == before[2] + 3
    text = metrics.REGISTRY.render()
    assert f'shipmate_http_requests_total{{app="{app}",class="2xx"}}' in text
    assert f'shipmate_http_request_seconds_bucket{{app="{app}",le="0.025"}}' in text
