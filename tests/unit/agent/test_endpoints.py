"""The agent's router endpoints (pure part): which container units take traffic, at which
host port, under which key; and the [X-Shipmate] route declaration they come from."""

from __future__ import annotations

import json

import pytest

from shipmate.agent.endpoints import instance_name, published_port, unit_endpoints
from shipmate.engine.base import ContainerInfo
from shipmate.errors import ValidationError
from shipmate.paas.units import instance_units
from shipmate.spec.container import PortMapping
from shipmate.spec.unitcontainer import container_spec
from shipmate.spec.unitfile import parse
from shipmate.spec.units import parse_unit
from shipmate.spec.unitshipmate import UnitRoute, default_route, unit_options


def _container(*ports: PortMapping, state: str = "running",
               health: str | None = None) -> ContainerInfo:
    return ContainerInfo("c1", "n", "img", "sha256:x", state, {}, {}, ports, health)


def test_ipv4_host_uses_the_ipv4_binding_when_docker_gives_the_families_different_ports() -> None:
    # Docker 20.10 sorted like this: the IPv6 binding first, with another port.
    c = _container(PortMapping(5000, 32780, "::"), PortMapping(5000, 32782, "0.0.0.0"))
    assert published_port(c, 5000, "127.0.0.1") == 32782
    assert published_port(c, 5000, "::1") == 32780
    (value,) = unit_endpoints({"a.container": UnitRoute("a", 5000)}, {"a.container": c},
                              "127.0.0.1", "m1").values()
    assert json.loads(value)["port"] == 32782


def test_binding_to_the_host_address_itself_counts_and_other_ports_do_not() -> None:
    c = _container(PortMapping(8080, 40000, "0.0.0.0"), PortMapping(5000, 40001, "10.0.0.5"))
    assert published_port(c, 5000, "10.0.0.5") == 40001
    assert published_port(c, 8080, "10.0.0.5") == 40000
    assert published_port(c, 5000, "127.0.0.1") is None
    assert published_port(_container(PortMapping(5000, 0, "0.0.0.0")), 5000, "127.0.0.1") is None


def test_only_running_routed_units_that_are_not_failing_their_check_are_endpoints() -> None:
    port = PortMapping(8080, 32000, "0.0.0.0")
    route = UnitRoute("shop", 8080, ("shop.example.com",))
    routes = {f"{n}.container": route for n in ("up", "down", "sick", "booting", "gone")}
    found = unit_endpoints(routes, {
        "up.container": _container(port, health="healthy"),
        "down.container": _container(port, state="exited"),
        "sick.container": _container(port, health="unhealthy"),
        "booting.container": _container(port, health="starting"),
    }, "127.0.0.1", "m1")
    assert list(found) == ["/shipmate/endpoints/shop/web/up-m1"]
    rec = json.loads(found["/shipmate/endpoints/shop/web/up-m1"])
    assert (rec["host"], rec["port"], rec["machine"], rec["domains"]) == (
        "127.0.0.1", 32000, "m1", ["shop.example.com"])


def test_instance_names_stay_valid_and_distinct_when_long() -> None:
    long_a, long_b = "x" * 150 + "a.container", "x" * 150 + "b.container"
    a, b = instance_name(long_a, "m1"), instance_name(long_b, "m1")
    assert len(a) == 128 and a != b
    assert instance_name("web@2.container", "m1") == "web@2-m1"


def _options(name: str, text: str) -> UnitRoute | None:
    unit = parse(text)
    spec = container_spec(unit, name, hostname="h", machine_id="m")
    return unit_options(unit, name, spec).route


UNIT = "[Container]\nImage=shipmate/base:bookworm\nPublishPort=8080\n"


def test_a_unit_declares_its_route_in_x_shipmate() -> None:
    assert _options("web@1.container", UNIT) is None  # not routed
    route = _options("web@1.container", UNIT + "[X-Shipmate]\nDomain=Shop.Example.com\n")
    assert route == UnitRoute("web", 8080, ("shop.example.com",))
    two_ports = UNIT + "PublishPort=127.0.0.1::9090\n[X-Shipmate]\nDomain=a.example.com\n"
    with pytest.raises(ValidationError, match="needs RoutePort"):
        _options("a.container", two_ports)
    assert _options("a.container", two_ports + "RoutePort=9090\n").port == 9090  # type: ignore
    with pytest.raises(ValidationError, match="RoutePort=7000 is not published"):
        _options("a.container", UNIT + "[X-Shipmate]\nRoutePort=7000\n")
    with pytest.raises(ValidationError, match="Domain=: invalid domain 'bad;domain'"):
        _options("a.container", UNIT + "[X-Shipmate]\nDomain=bad;domain\n")
    with pytest.raises(ValidationError, match="wildcard domains are not supported"):
        _options("a.container", UNIT + "[X-Shipmate]\nDomain=*.example.com\n")
    with pytest.raises(ValidationError, match="unsupported key 'Domains'"):
        parse_unit("a.container", UNIT + "[X-Shipmate]\nDomains=a.example.com\n")
    assert default_route("My_Shop@3.container") == "my-shop"


def test_paas_web_units_route_to_their_app_and_release() -> None:
    units = instance_units("shop", "v3-ab12", "img:1", {"web": "serve", "worker": "work"},
                           {"web": 1, "worker": 1}, {}, "rev")
    web, worker = sorted(units, key=lambda u: u.process)
    assert _options(web.name, web.text) == UnitRoute("shop", 5000, (), "v3-ab12")
    assert _options(worker.name, worker.text) is None
    assert parse_unit(web.name, web.text).name == web.name  # what submit checks
