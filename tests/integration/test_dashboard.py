"""Issue 21's dashboard against a real daemon: requests without a session are refused on
every route of the dashboard's table (a page with a redirect to the login, everything else
with 401), forged POSTs are refused, the router serves it at ``shipmate.GLOBALDOMAIN``, and
in Debian's chromium a user logs in, opens an app, scales it and sees the new instance
appear without reloading, and the app's request graphs draw the numbers ``/metrics`` serves
for it after requests through the router. Screenshots of each page go to
``$SHIPMATE_TEST_OUTPUT/screenshots`` (default ``test-output/screenshots`` in the checkout)."""

from __future__ import annotations

import http.cookiejar
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipmate.web.dashboard.routes import ROUTES
from tests.conftest import free_port
from tests.integration.paas_helpers import (
    DOMAIN,
    ROOT,
    PaasDaemon,
    head,
    running_daemon,
    unique,
    work_tree,
)

pytestmark = pytest.mark.integration
PASSWORD = "dashboard test password"
REQUESTS = 40
HELLO = "pool/main/h/hello/hello_2.10-3_amd64.deb"
OUTPUT = Path(os.environ.get("SHIPMATE_TEST_OUTPUT", ROOT / "test-output"))
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1366,1900")


class Dash:
    """The daemon and its dashboard's address."""

    def __init__(self, daemon: PaasDaemon, port: int, app: str) -> None:
        self.daemon, self.port, self.app = daemon, port, app
        self.base = f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dash]:
    """A daemon with the dashboard on a free port, an admin user, and an app with two
    releases (a push, then a config:set over SSH)."""
    port = free_port()
    with running_daemon("shipmate-dash-", env={"SHIPMATE_DASHBOARD_PORT": str(port)}) as d:
        added = d.cli("users:add", "admin", "--admin", "--password-stdin",
                      input=PASSWORD + "\n")
        assert added.returncode == 0, added.stderr
        tree, app = work_tree(tmp_path_factory.mktemp("dash") / "tree"), unique("dash")
        res = d.push(tree, app)
        assert res.returncode == 0, res.stderr[-3000:]
        d.wait_page(app, head(tree)[:7])
        out = d.ssh("config:set", app, "GREETING=secret-value-7")
        assert out.returncode == 0, out.stderr
        for _ in range(2):  # a miss, then a hit: the cache page has something to show
            status, _, _ = _request(f"http://127.0.0.1:{d.env['SHIPMATE_CACHE_PORT']}/"
                                    f"deb.debian.org/debian/{HELLO}")
            assert status == 200
        yield Dash(d, port, app)


def _request(url: str, method: str = "GET", data: dict[str, str] | None = None,
             headers: dict[str, str] | None = None,
             opener: urllib.request.OpenerDirector | None = None) -> tuple[int, dict[str, str],
                                                                           str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    opener = opener or urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read(65536).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode(errors="replace")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _fill(path: str, app: str) -> str:
    return (path.replace("{app}", app).replace("{unit}", f"{app}_web.1_v1-0000.container")
            .replace("{name}", "dash.css"))


def test_every_route_refuses_a_client_without_a_session(dash: Dash) -> None:
    for route in (r for r in ROUTES if r.kind != "public"):
        status, headers, body = _request(dash.base + _fill(route.path, dash.app),
                                         route.method, {} if route.method == "POST" else None)
        if route.kind == "page":
            assert status == 303 and headers["Location"].startswith("/login"), route
        else:
            assert status == 401, (route, status)
        assert "secret-value-7" not in body and "GREETING" not in body
    assert '"locked": false' in dash.daemon.ok("apps:report", dash.app, "--format", "json")


def _session(dash: Dash) -> tuple[urllib.request.OpenerDirector, str]:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect)
    _, _, page = _request(dash.base + "/login", opener=opener)
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token
    status, _, _ = _request(dash.base + "/login", "POST", {
        "user": "admin", "password": PASSWORD, "csrf": token.group(1)}, opener=opener)
    assert status == 303
    _, _, page = _request(f"{dash.base}/apps/{dash.app}", opener=opener)
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token and "GREETING" in page and "secret-value-7" not in page
    return opener, token.group(1)


def test_a_forged_post_is_refused(dash: Dash) -> None:
    opener, token = _session(dash)
    lock = f"{dash.base}/apps/{dash.app}/lock"
    assert _request(lock, "POST", {}, opener=opener)[0] == 403
    assert _request(lock, "POST", {"csrf": token}, {"Origin": "http://evil.example"},
                    opener=opener)[0] == 403
    assert _request(lock, "POST", {"csrf": token}, {"Referer": "http://evil.example/x"},
                    opener=opener)[0] == 403
    assert '"locked": false' in dash.daemon.ok("apps:report", dash.app, "--format", "json")
    assert _request(lock, "POST", {"csrf": token}, opener=opener)[0] == 303
    events = dash.daemon.ok("events", "--app", dash.app)
    assert re.search(r"admin\s+apps:lock", events), events
    assert _request(f"{dash.base}/apps/{dash.app}/unlock", "POST", {"csrf": token},
                    opener=opener)[0] == 303


def test_the_router_serves_the_dashboard_at_shipmate_domain(dash: Dash) -> None:
    url = f"http://127.0.0.1:{dash.daemon.http_port}/login"
    deadline = time.monotonic() + 30
    while True:
        status, _, body = _request(url, headers={"Host": f"shipmate.{DOMAIN}"})
        if status == 200 and 'name="password"' in body:
            break
        assert time.monotonic() < deadline, (status, body[:300])
        time.sleep(0.5)
    status, headers, _ = _request(url.replace("/login", "/"),
                                  headers={"Host": f"shipmate.{DOMAIN}"})
    assert status == 303 and headers["Location"].startswith("/login")


def test_users_are_managed_on_the_machine_only(dash: Dash) -> None:
    res = dash.daemon.ssh("users:list")
    assert res.returncode != 0 and "only be run on the machine itself" in res.stderr
    listed = dash.daemon.ok("users:list", "--format", "json")
    assert '"name": "admin"' in listed and "scrypt" not in listed


# -- the browser ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium driven by Debian's chromedriver, in a fresh profile."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("chromium and chromium-driver are missing: run scripts/bootstrap")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="shipmate-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or ""),
                              options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _shot(driver: Any, name: str) -> Path:
    folder = OUTPUT / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"dashboard-{name}.png"
    assert driver.save_screenshot(str(path)), path
    return path


def _wait(driver: Any, check: Any, timeout: float = 60, what: str = "") -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.3).until(check, what)


def test_log_in_open_an_app_scale_it_and_see_it_live(dash: Dash, browser: object) -> None:
    from selenium.webdriver.common.by import By

    d: Any = browser
    for _ in range(REQUESTS):  # through the router: what the graphs draw
        assert dash.daemon.get(dash.app)[0] == 200
    d.get(dash.base + "/")
    _wait(d, lambda d: "/login" in d.current_url, 10, "the login page")
    _shot(d, "1-login")
    d.find_element(By.ID, "user").send_keys("admin")
    d.find_element(By.ID, "password").send_keys(PASSWORD)
    d.find_element(By.ID, "login").click()
    _wait(d, lambda d: d.find_elements(By.LINK_TEXT, dash.app), 20, "the app on the overview")
    _wait(d, lambda d: "1 / 1" in _text(d, "#apps"), 30, "its instance")
    _shot(d, "2-overview")
    d.find_element(By.LINK_TEXT, dash.app).click()
    _wait(d, lambda d: len(_running(d)) == 1, 30, "one running instance")
    d.execute_script("window.shipmateMarker = 'not reloaded';")
    assert "GREETING" in d.page_source and "secret-value-7" not in d.page_source
    # sampled every 10 s, polled by the page every 10 s: the page catches up with /metrics
    _wait(d, lambda d: _graphs_match(d, dash), 60, "the request graphs")
    _shot(d, "3-app")
    count = d.find_element(By.ID, "scale-count")
    count.clear()
    count.send_keys("2")
    d.find_element(By.ID, "scale").click()
    _wait(d, lambda d: "Scaling web=2" in _text(d, "#flash"), 10, "the flash")
    _wait(d, lambda d: len(_running(d)) == 2, 120, "the second instance, live")
    _wait(d, lambda d: "Application deployed" in _text(d, "#deploy"), 60,
          "the deploy output")
    assert d.execute_script("return window.shipmateMarker") == "not reloaded"
    assert _text(d, "#running-count") == "2"
    _wait(d, lambda d: "ps:scale" in _text(d, "#events"), 30, "the event")
    _wait(d, lambda d: "listening on port" in _text(d, "#logs"), 30,
          "the app's logs")
    endpoints = {r.split()[4] for r in _running(d)}
    assert len(endpoints) == 2, endpoints  # each instance its own endpoint
    _shot(d, "4-app-scaled")
    for page, name, marker in (("/machines", "5-machines", f"{dash.app}_web.2"),
                               ("/cache", "7-cache", "hello_2.10-3_amd64.deb")):
        d.get(dash.base + page)
        _wait(d, lambda d, m=marker: m in d.page_source, 20, page)
        _shot(d, name)
    d.get(f"{dash.base}/machines")
    # the unit's link on the machines page (read in one script: the live stream replaces
    # the table now and then)
    href = d.execute_script("return document.querySelector(arguments[0]).getAttribute('href')",
                            f'#units a[href^="/units/{dash.app}_web.1_"]')
    d.get(dash.base + href)
    _wait(d, lambda d: "listening on port" in _text(d, "#journal"), 30,
          "the journal")
    assert "active" in _text(d, "#units")
    _shot(d, "6-unit")


def _requests_in_metrics(dash: Dash) -> int:
    """The app's requests in ``/metrics`` (every status class), parsed as Prometheus does."""
    from prometheus_client.parser import text_string_to_metric_families

    sock = Path(dash.daemon.env["SHIPMATE_STATE_DIR"]) / "shipmate.sock"
    res = subprocess.run(["curl", "-sS", "--fail", "--unix-socket", str(sock),
                          "http://shipmate/metrics"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return int(sum(s.value for f in text_string_to_metric_families(res.stdout)
                   for s in f.samples if s.name == "shipmate_http_requests_total"
                   and s.labels["app"] == dash.app))


def _graphs_match(driver: Any, dash: Dash) -> bool:
    """The app page's graphs draw lines (no "no data"), and its total is /metrics' total
    (which has at least the requests the test made)."""
    graphs = driver.execute_script(
        "const g = document.querySelector('#graphs'); return g ? {"
        " labels: Array.from(g.querySelectorAll('svg.graph'))"
        "   .map(s => s.getAttribute('aria-label')),"
        " titles: Array.from(g.querySelectorAll('svg.graph text.title'))"
        "   .map(t => t.textContent),"
        " lines: g.querySelectorAll('svg.graph path.line').length,"
        " total: (g.querySelector('#http-totals b') || {}).textContent} : null")
    if not graphs or graphs["lines"] != 4 or len(graphs["labels"]) != 2:
        return False
    requests, latency = graphs["labels"]
    assert requests.startswith("requests/s, last ") and "no data" not in requests, requests
    assert latency.startswith("request time, last ") and "no data" not in latency, latency
    assert "(max 0 " not in graphs["titles"][0], graphs["titles"]  # a rate above zero
    exposed = _requests_in_metrics(dash)
    assert exposed >= REQUESTS
    return graphs["total"] == str(exposed)


def _text(driver: Any, selector: str) -> str:
    """The text of the element ``selector`` now ('' when there is none), in one script."""
    return str(driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : ''",
        selector))


def _running(driver: Any) -> list[str]:
    """The running instances' rows, as text (read in one script: the live stream may
    replace the table between two WebDriver calls)."""
    rows = driver.execute_script(
        "return Array.from(document.querySelectorAll('#instances tr.instance'))"
        ".map(r => r.innerText)")
    return [r for r in rows if "active/running" in r]
