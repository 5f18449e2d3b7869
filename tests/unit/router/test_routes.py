"""Route computation: which names, ports and endpoints each app gets."""

from __future__ import annotations

import random

from shipmate.router import keys
from shipmate.router.routes import Endpoint, Route, RouterState, state_from_kvs


def domains(app: str, names: list[str] | None = None, port: int | None = None) -> tuple[str, bytes]:
    return keys.domains_key(app), keys.encode_domains(names or [], port).encode()


def active(app: str, release: str) -> tuple[str, bytes]:
    return keys.active_key(app), keys.encode_active(release).encode()


def endpoint(app: str, inst: str, port: int, release: str = "v1", *, process: str = "web",
             host: str = "127.0.0.1", healthy: bool = True) -> tuple[str, bytes]:
    value = keys.encode_endpoint(host, port, release=release, machine="m1", healthy=healthy)
    return keys.endpoint_key(app, process, inst), value.encode()


def glob(domain: str) -> tuple[str, bytes]:
    return keys.GLOBAL_DOMAIN_KEY, keys.encode_global_domain(domain).encode()


def route(state: RouterState, app: str) -> Route:
    return next(r for r in state.routes if r.app == app)


def test_global_domain_and_custom_domains() -> None:
    state = state_from_kvs([glob("apps.test"), domains("web", ["www.example.com"]),
                            active("web", "v1"), endpoint("web", "1", 5001)], http_port=8080)
    assert state.http_port == 8080
    assert state.routes == (Route("web", ("web.apps.test", "www.example.com"), None,
                                  (Endpoint("127.0.0.1", 5001, "m1", "web.1"),)),)
    assert state.problems == ()


def test_default_global_domain_applies_only_when_store_has_none() -> None:
    pairs = [domains("web")]
    assert route(state_from_kvs(pairs, default_global_domain="d.test"), "web").domains == (
        "web.d.test",)
    pairs.append(glob("store.test"))
    assert route(state_from_kvs(pairs, default_global_domain="d.test"), "web").domains == (
        "web.store.test",)


def test_bad_default_global_domain_is_a_problem_not_a_crash() -> None:
    state = state_from_kvs([domains("web", [], 9000)], default_global_domain="bad domain")
    assert route(state, "web") == Route("web", (), 9000, ())
    assert any("global domain" in p for p in state.problems)


def test_app_without_global_domain_uses_its_port() -> None:
    state = state_from_kvs([domains("api", [], 10001), active("api", "v1"),
                            endpoint("api", "1", 5001)])
    assert route(state, "api").port == 10001
    assert route(state, "api").domains == ()


def test_unreachable_app_is_reported() -> None:
    state = state_from_kvs([domains("lost")])
    assert route(state, "lost") == Route("lost")
    assert any("lost" in p and "cannot be reached" in p for p in state.problems)


def test_only_the_active_release_is_routed() -> None:
    base = [domains("web", ["w.test"]), endpoint("web", "1", 5001, "v1"),
            endpoint("web", "2", 5002, "v2")]
    assert route(state_from_kvs(base), "web").endpoints == ()  # no active release yet
    v1 = route(state_from_kvs([*base, active("web", "v1")]), "web")
    assert [e.port for e in v1.endpoints] == [5001]
    v2 = route(state_from_kvs([*base, active("web", "v2")]), "web")
    assert [e.port for e in v2.endpoints] == [5002]
    every = route(state_from_kvs([*base, active("web", "*")]), "web")
    assert [e.port for e in every.endpoints] == [5001, 5002]


def test_only_healthy_web_endpoints_are_routed() -> None:
    state = state_from_kvs([
        domains("web", ["w.test"]), active("web", "v1"),
        endpoint("web", "1", 5001), endpoint("web", "2", 5002, healthy=False),
        endpoint("web", "1", 5003, process="worker"), endpoint("other", "1", 5004),
    ])
    assert [e.port for e in route(state, "web").endpoints] == [5001]


def test_same_address_twice_is_one_endpoint() -> None:
    state = state_from_kvs([domains("web", ["w.test"]), active("web", "v1"),
                            endpoint("web", "1", 5001), endpoint("web", "2", 5001)])
    assert route(state, "web").endpoints == (Endpoint("127.0.0.1", 5001, "m1", "web.1"),)


def test_endpoints_are_sorted() -> None:
    pairs = [domains("web", ["w.test"]), active("web", "v1")]
    pairs += [endpoint("web", str(i), 6000 - i, host=f"10.0.0.{i % 3 + 1}") for i in range(9)]
    eps = route(state_from_kvs(pairs), "web").endpoints
    assert list(eps) == sorted(eps)
    assert len(eps) == 9


def test_custom_domain_beats_derived_global_name() -> None:
    state = state_from_kvs([glob("apps.test"), domains("www"), domains("site", ["www.apps.test"])])
    assert route(state, "site").domains == ("site.apps.test", "www.apps.test")
    assert route(state, "www").domains == ()
    assert any("www.apps.test already belongs to site" in p for p in state.problems)


def test_domain_claimed_by_two_apps_goes_to_first_name() -> None:
    state = state_from_kvs([domains("b", ["x.test"]), domains("a", ["x.test"])])
    assert route(state, "a").domains == ("x.test",)
    assert route(state, "b").domains == ()
    assert any(p.startswith("b: domain x.test") for p in state.problems)


def test_port_conflicts() -> None:
    state = state_from_kvs([domains("a", [], 9000), domains("b", [], 9000),
                            domains("c", ["c.test"], 8080)], http_port=8080)
    assert route(state, "a").port == 9000
    assert route(state, "b").port is None
    assert route(state, "c").port is None
    assert route(state, "c").domains == ("c.test",)
    assert len(state.problems) == 3  # b's port, c's port, b unreachable


def test_order_of_store_records_does_not_matter() -> None:
    pairs = [glob("g.test"), domains("a", ["x.test"]), domains("b", [], 9001), active("a", "v1"),
             active("b", "*")]
    pairs += [endpoint(app, str(i), 5000 + i) for app in "ab" for i in range(5)]
    first = state_from_kvs(pairs)
    for seed in range(5):
        random.Random(seed).shuffle(pairs)
        assert state_from_kvs(pairs) == first


def unit_endpoint(route_name: str, inst: str, port: int, names: list[str]) -> tuple[str, bytes]:
    key = keys.endpoint_key(route_name, "web", inst)
    return key, keys.encode_endpoint("10.0.0.1", port, release="", domains=names).encode()


def test_endpoints_that_declare_domains_make_a_route_of_their_own() -> None:
    state = state_from_kvs([
        glob("apps.example.com"),
        unit_endpoint("shop", "shop@1-m1", 32001, ["shop.example.com"]),
        unit_endpoint("shop", "shop@2-m2", 32002, ["www.shop.example.com"]),
    ])
    shop = route(state, "shop")
    assert shop.domains == ("shop.apps.example.com", "shop.example.com", "www.shop.example.com")
    assert [e.port for e in shop.endpoints] == [32001, 32002]  # every release: no active key
    assert state.problems == ()


def test_an_apps_own_record_wins_over_unit_declared_domains() -> None:
    state = state_from_kvs([
        domains("shop", ["shop.example.com"]), active("shop", "v1"),
        endpoint("shop", "1-v1-m1", 32001),
        unit_endpoint("shop", "shop-m1", 32009, ["evil.example.com"]),
    ])
    shop = route(state, "shop")
    assert shop.domains == ("shop.example.com",)
    assert [e.port for e in shop.endpoints] == [32001]  # release "" is not the active one
    assert any("unit endpoints declare domains" in p for p in state.problems)


def test_a_unit_cannot_take_an_apps_domain() -> None:
    # "aaa" sorts first, and a unit's custom name would otherwise beat the app's derived one.
    state = state_from_kvs([
        glob("apps.example.com"),
        domains("web", ["www.example.com"]), active("web", "v1"),
        endpoint("web", "1-v1-m1", 32001),
        unit_endpoint("aaa", "aaa-m1", 32009, ["web.apps.example.com", "www.example.com",
                                               "aaa.example.com"]),
    ])
    assert route(state, "web").domains == ("web.apps.example.com", "www.example.com")
    assert route(state, "aaa").domains == ("aaa.apps.example.com", "aaa.example.com")
    assert sum("already belongs to web" in p for p in state.problems) == 2
