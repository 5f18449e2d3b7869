"""Per-app HTTP metrics from the router's real nginx: a real daemon routes a ``.container``
unit by its domain; requests made with curl through nginx show up in ``/metrics`` (parsed by
prometheus_client's parser and a strict one) under the app's name and status class, with a
latency histogram, beside the deploy histogram and the store's request latency. A request that
names another app in its headers still counts for the app nginx routed it to; a request to no
app counts for none."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration import daemon_helpers
from tests.integration.daemon_helpers import shipmate
from tests.unit.core.test_metrics import strict_parse

pytestmark = pytest.mark.integration
PYTHON = "shipmate/python:3.11"


@pytest.fixture
def routed_daemon(tmp_path: Path, docker_host: str) -> Iterator[tuple[dict[str, str], int, str]]:
    with daemon_helpers.routed_daemon(tmp_path, docker_host, "test-hm") as daemon:
        yield daemon


def curl(port: int, host: str, path: str = "/", *headers: str) -> int:
    args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
            "-H", f"Host: {host}"]
    for header in headers:
        args += ["-H", header]
    res = subprocess.run([*args, f"http://127.0.0.1:{port}{path}"], capture_output=True,
                         text=True, timeout=10)
    return int(res.stdout or 0)


def get_metrics(env: dict[str, str]) -> str:
    sock = Path(env["SHIPMATE_STATE_DIR"]) / "shipmate.sock"
    res = subprocess.run(["curl", "-sS", "--fail", "--unix-socket", str(sock),
                          "http://shipmate/metrics"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return res.stdout


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Sample (its name's labels, sorted) -> value, for samples called ``name``."""
    return {tuple(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == name}


def wait_until(check, timeout: float = 60.0) -> object:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.3)


def test_requests_through_nginx_reach_metrics_by_app_and_class(
        routed_daemon: tuple[dict[str, str], int, str], tmp_path: Path) -> None:
    env, port, machine = routed_daemon
    tag = uuid.uuid4().hex[:6]
    app, domain = f"shop{tag}", f"shop-{tag}.example.com"
    unit = tmp_path / f"{app}@1.container"
    unit.write_text(f"[Container]\nImage={PYTHON}\n"
                    "Exec=/bin/sh -c 'mkdir -p /srv && echo hello > /srv/index.html && "
                    "exec python3 -m http.server 8080 --directory /srv'\n"
                    "PublishPort=8080\n\n"
                    f"[X-Fleet]\nMachineID={machine}\n\n[X-Shipmate]\nDomain={domain}\n")
    started = shipmate(env, "fleet", "start", str(unit))
    assert started.returncode == 0, started.stdout + started.stderr
    wait_until(lambda: curl(port, domain) == 200)  # a number of tries: counted too

    # The follower reads the log once a second: start from a count that holds the tries.
    before = wait_until(lambda: (got := samples(get_metrics(env), "shipmate_http_requests_total"))
                        .get((("app", app), ("class", "2xx"))) and got)
    assert isinstance(before, dict)
    ok_before = before[(("app", app), ("class", "2xx"))]
    # Headers that name another app decide nothing: nginx chose the server by its domain.
    codes = [curl(port, domain, "/", "X-Shipmate-App: victim", "X-Forwarded-Host: victim")
             for _ in range(5)]
    codes += [curl(port, domain, "/missing") for _ in range(3)]
    codes.append(curl(port, f"nobody-{tag}.example.com"))  # no app: the 404 default server
    assert codes == [200] * 5 + [404] * 4

    def counted() -> str | None:
        text = get_metrics(env)
        got = samples(text, "shipmate_http_requests_total")
        done = got.get((("app", app), ("class", "2xx")), 0) >= ok_before + 5 \
            and got.get((("app", app), ("class", "4xx")), 0) >= 3
        return text if done else None

    text = str(wait_until(counted, timeout=30))
    requests = samples(text, "shipmate_http_requests_total")
    assert requests[(("app", app), ("class", "2xx"))] == ok_before + 5
    assert requests[(("app", app), ("class", "4xx"))] == 3  # not the default server's 404
    assert {dict(k)["app"] for k in requests} <= {app, *(dict(k)["app"] for k in before)}
    assert all(dict(k)["app"] != "victim" for k in requests)
    count = samples(text, "shipmate_http_request_seconds_count")[(("app", app),)]
    assert count == sum(v for k, v in requests.items() if dict(k)["app"] == app)
    inf = samples(text, "shipmate_http_request_seconds_bucket")[(("app", app), ("le", "+Inf"))]
    assert inf == count

    parsed = strict_parse(text)  # and the whole text is well formed, every TYPE first
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["shipmate_deploy_duration_seconds"].type == "histogram"
    assert families["shipmate_http_request_seconds"].type == "histogram"
    assert parsed["shipmate_store_request_duration_seconds"]  # the daemon's store is timed
    txn = samples(text, "shipmate_store_request_duration_seconds_count")
    assert txn[(("backend", "sqlite"), ("op", "txn"))] > 0
