"""The dashboard's pure parts: instances and their endpoints, release authors, what a
non-admin sees, the cache view, the graphs, the login rate limiter, the origin check,
sessions and the recent-events index."""

from __future__ import annotations

import pytest

from shipmate import metrics
from shipmate.agent.endpoints import instance_name
from shipmate.paas.model import Release
from shipmate.router.keys import EndpointRecord
from shipmate.scheduler.model import Machine, UnitState
from shipmate.testing import FakeClock
from shipmate.testing.store import memory_store
from shipmate.web import httpstats
from shipmate.web.dashboard import auth, views
from shipmate.web.dashboard.auth import Principal, RateLimiter
from shipmate.web.dashboard.data import AppInfo, Platform
from shipmate.web.dashboard.recent import RecentEvents
from shipmate.web.dashboard.sessions import Sessions, session_key
from shipmate.web.eventlog import EventLog
from shipmate.web.events import AuditEvent

ADMIN = Principal("root", True, "t")
ALICE = Principal("alice", False, "t")
W1, W2 = "web_web.1_v2-ab.container", "web_web.2_v2-ab.container"
O1 = "other_web.1_v1-cd.container"


def _platform() -> Platform:
    return Platform(
        revision=9,
        apps={"web": AppInfo("web", False, 0, 2, {"web": 2}),
              "other": AppInfo("other", True, 0, 1, {"web": 1})},
        machines={"m1": Machine("m1", "10.0.0.1"), "m2": Machine("m2", "10.0.0.2")},
        units=(W1, W2, O1, "hand.service"),
        desired={W1: "launched", W2: "launched", O1: "launched"},
        placements={W2: ("m2",)},
        states=(UnitState(W1, "m1", "loaded", "active", "running"),
                UnitState(O1, "m2", "loaded", "failed", "failed"),
                UnitState("hand.service", "m1", "loaded", "active", "running")),
        endpoints=(EndpointRecord("web", "web", instance_name(W1, "m1"), "10.0.0.1", 3001,
                                  "m1", "v2-ab", True),
                   EndpointRecord("web", "web", instance_name(W2, "m2"), "10.0.0.2", 3002,
                                  "m2", "v2-ab", False)),
        global_domain="example.test",
        grants={"web": frozenset({"alice"})})


def test_instances_are_where_they_run_with_their_own_endpoint() -> None:
    rows = views.instances(_platform(), "web")
    assert [(r.name, r.machine, r.state, r.endpoint, r.health) for r in rows] == [
        ("web.1", "m1", "active/running", "10.0.0.1:3001", "healthy"),
        # placed on m2, not reported yet; its endpoint says it fails its health check
        ("web.2", "m2", "waiting", "10.0.0.2:3002", "unhealthy")]
    assert views.running(rows) == 1 and views.instances(_platform(), "nope") == []


def test_a_user_sees_the_apps_units_and_events_granted_to_them() -> None:
    p = _platform()
    assert [a["name"] for a in views.app_rows(p, ADMIN)] == ["other", "web"]
    [row] = views.app_rows(p, ALICE, http_port=8080)
    assert (row["name"], row["running"], row["instances"], row["url"]) == (
        "web", 1, 2, "http://web.example.test:8080")
    assert {u["unit"] for u in views.unit_rows(p, ALICE)} == {W1, W2}
    assert {u["unit"] for u in views.unit_rows(p, ADMIN)} == {W1, W2, O1, "hand.service"}
    events = [AuditEvent(1, "bob", "ssh", "push", "other", seq=1),
              AuditEvent(2, "bob", "ssh", "push", "web", seq=2),
              AuditEvent(3, "root", "local", "domains:set-global", "", seq=3)]
    assert [e["seq"] for e in views.event_rows(events, ALICE, p.grants)] == [2]
    assert [e["seq"] for e in views.event_rows(events, ADMIN, p.grants)] == [3, 2, 1]


def _release(v: int, created: float) -> Release:
    return Release(v, "sha256:0", {}, {}, {"web": ""}, "abcdef0123", created, f"r{v}")


def test_a_release_is_told_with_the_event_that_made_it() -> None:
    releases = [_release(1, 100.0), _release(2, 200.0), _release(3, 300.0)]
    events = [AuditEvent(105.0, "alice", "ssh", "push", "web", duration=20.0),
              AuditEvent(201.0, "bob", "dashboard", "ps:scale", "web", duration=3.0),
              AuditEvent(250.0, "eve", "ssh", "push", "web", outcome="failed"),
              AuditEvent(301.0, "carol", "ssh", "apps:lock", "web")]
    rows = views.release_rows(releases, 2, events)
    assert [(r["label"], r["by"], r["verb"], r["current"]) for r in rows] == [
        ("v3", "-", "", False), ("v2", "bob", "ps:scale", True), ("v1", "alice", "push", False)]


def test_the_cache_view() -> None:
    assert views.cache_view(None, []) == {"enabled": False}
    snap = {"formats": {"apt": {"requests": 4, "hits": 2, "revalidated": 1, "misses": 1,
                                "bytes_from_cache": 3 * 2**20, "bytes_from_upstream": 10}},
            "total": {"hits": 2, "revalidated": 1, "misses": 1, "bytes_from_cache": 3 * 2**20},
            "storage": {"entries": 2, "bytes": 2048}}
    view = views.cache_view(snap, [("http://h/a/small.deb", "apt", 10, 0.0),
                                   ("http://h/a/big.deb", "apt", 5000, 0.0)])
    assert (view["hit_rate"], view["saved"], view["formats"][0]["hit_rate"]) == (
        "75.0%", "3.0 MiB", "75.0%")
    assert [f["name"] for f in view["files"]] == ["big.deb", "small.deb"]


def test_request_graphs_and_totals_from_the_samples_and_no_data_without_them() -> None:
    bounds = metrics.HTTP_REQUEST_SECONDS.buckets
    empty = views.request_graphs([], bounds, now=1000.0)
    assert empty["total"] == 0 and empty["p95"] == "-"
    assert len(empty["charts"]) == 2 and all("no data" in c for c in empty["charts"])
    requests, seconds = (
        metrics.Counter(metrics.HTTP_REQUESTS.name, "", ("app", "class")),
        metrics.Histogram(metrics.HTTP_REQUEST_SECONDS.name, "", ("app",), bounds))
    sampler = httpstats.Sampler(requests, seconds)
    sampler.sample(900.0)
    for t in (910.0, 920.0):
        requests.inc(50, app="web", **{"class": "2xx"})
        requests.inc(10, app="web", **{"class": "5xx"})
        for _ in range(60):
            seconds.observe(0.02, app="web")
        sampler.sample(t)
    g = views.request_graphs(sampler.of("web"), sampler.bounds, now=925.0)
    assert g["total"] == 120 and g["classes"] == [("2xx", 100), ("5xx", 20)]
    assert g["p50"] == "17.5 ms"  # within the (10, 25] ms bucket, as histogram_quantile says
    drawn = "".join(g["charts"])
    assert "no data" not in drawn and drawn.count("<path") == 4
    assert "requests/s, last 25 s (max 6 req/s)" in drawn  # from the first sample to now
    assert "request time, last 25 s (max 24.2 ms)" in drawn  # the p95's


def test_failed_logins_are_limited_per_key_over_a_sliding_minute() -> None:
    limiter = RateLimiter(limit=5, window=60.0)
    keys = auth.login_keys("alice", "10.0.0.9")
    for t in range(5):
        assert limiter.retry_after(keys, float(t)) == 0
        limiter.failed(keys, float(t))
    assert limiter.retry_after(keys, 10.0) == pytest.approx(50.0)
    assert limiter.retry_after(auth.login_keys("alice", "10.0.0.10"), 10.0) > 0  # the user
    assert limiter.retry_after(auth.login_keys("bob", "10.0.0.9"), 10.0) > 0  # the address
    assert limiter.retry_after(auth.login_keys("bob", "10.0.0.10"), 10.0) == 0
    assert limiter.retry_after(keys, 60.5) == 0  # the first failure left the window


@pytest.mark.parametrize(("headers", "ok"), [
    ({}, True), ({"Origin": "https://dash.example"}, True),
    ({"Origin": "http://dash.example"}, False), ({"Origin": "null"}, False),
    ({"Origin": "https://evil.example"}, False),
    ({"Referer": "https://dash.example/apps/web"}, True),
    ({"Referer": "https://evil.example/dash.example"}, False)])
def test_the_origin_check(headers: dict[str, str], ok: bool) -> None:
    assert auth.same_origin(headers, "https", "dash.example") is ok


def test_the_client_address_and_scheme() -> None:
    assert auth.client_address("127.0.0.1", {"X-Real-IP": "203.0.113.7"}) == "203.0.113.7"
    assert auth.client_address("198.51.100.1", {"X-Real-IP": "203.0.113.7"}) == "198.51.100.1"
    assert auth.scheme_of(False, {"X-Forwarded-Proto": "https"}) == "https"
    assert auth.scheme_of(False, {}) == "http"
    assert not auth.tokens_match("", "") and auth.tokens_match("abc", "abc")


async def test_sessions_live_in_the_store_by_digest_and_expire() -> None:
    store = await memory_store(FakeClock())
    now = [1000.0]
    sessions = Sessions(store, ttl=60.0, wall=lambda: now[0])
    token, session = await sessions.create("alice")
    raw = (await store.get(session_key(token))).value.decode()
    assert token not in raw and session.csrf in raw and session.user == "alice"
    assert await sessions.get(token) == session
    other = token[:-1] + ("B" if token.endswith("A") else "A")  # one character off
    assert await sessions.get(other) is None and await sessions.get("../x") is None
    now[0] += 61
    assert await sessions.get(token) is None
    now[0] -= 61
    await sessions.end(token)
    assert await sessions.get(token) is None
    await store.close()


async def test_recent_events_by_app_from_the_trail() -> None:
    store = await memory_store()
    log = EventLog(store)
    for i in range(1, 8):
        await log.record(AuditEvent(float(i), "bob", "ssh", "push", "web" if i % 2 else "x"))
    recent = RecentEvents(log, keep=3)
    assert [e.seq for e in await recent.read(3, "web")] == [3, 5, 7]  # before it is ready
    for event in (await log.recent(7))[0]:
        recent.add(event)
    recent.ready.set()
    assert [e.seq for e in await recent.read(3, "web")] == [3, 5, 7]
    assert [e.seq for e in await recent.read(2)] == [6, 7]
    await store.close()


async def test_a_platform_read_decodes_only_what_changed() -> None:
    from shipmate.scheduler import registry as reg
    from shipmate.web.dashboard.data import Memo, read_platform

    store = await memory_store()
    memo = Memo()
    lease = await store.grant(60)
    registry = reg.Registry(store)
    await registry.register_machine(Machine("m1", "10.0.0.1"), lease)
    await registry.report_state(UnitState(W1, "m1", "loaded", "active", "running"), lease)
    first = await read_platform(store, memo)
    again = await read_platform(store, memo)
    assert again.states[0] is first.states[0]  # the same decoded record: not decoded again
    await registry.report_state(UnitState(W1, "m1", "loaded", "failed", "failed"), lease)
    await store.delete(reg.machine_key("m1"))
    changed = await read_platform(store, memo)
    assert changed.states[0].active_state == "failed" and changed.machines == {}
    await store.close()
