import json

from shipmate.engine.base import ContainerInfo
from shipmate.paas.endpoints import published_port, wanted_endpoints
from shipmate.spec.container import PortMapping

LABELS = {"shipmate.app": "web-app", "shipmate.process": "web", "shipmate.instance": "web.1",
          "shipmate.release": "v2-ab12"}


def _container(*ports: PortMapping, state: str = "running",
               labels: dict[str, str] | None = None) -> ContainerInfo:
    return ContainerInfo("c1", "n", "img", "sha256:x", state, labels or LABELS, {}, ports)


def test_ipv4_host_uses_the_ipv4_binding_when_docker_gives_the_families_different_ports() -> None:
    # Docker 20.10 sorted like this: the IPv6 binding first, with another port.
    c = _container(PortMapping(5000, 32780, "::"), PortMapping(5000, 32782, "0.0.0.0"))
    assert published_port(c, "127.0.0.1") == 32782
    assert published_port(c, "::1") == 32780
    (value,) = wanted_endpoints([c], "127.0.0.1", "m1").values()
    assert json.loads(value)["port"] == 32782


def test_binding_to_the_host_address_itself_counts_and_other_ports_do_not() -> None:
    c = _container(PortMapping(8080, 40000, "0.0.0.0"), PortMapping(5000, 40001, "10.0.0.5"))
    assert published_port(c, "10.0.0.5") == 40001
    assert published_port(c, "127.0.0.1") is None
    assert published_port(_container(PortMapping(5000, 0, "0.0.0.0")), "127.0.0.1") is None


def test_only_running_labelled_containers_with_a_port_are_endpoints() -> None:
    port = PortMapping(5000, 32000, "0.0.0.0")
    found = wanted_endpoints([
        _container(port),
        _container(port, state="exited"),
        _container(port, labels={k: v for k, v in LABELS.items() if k != "shipmate.release"}),
        _container(PortMapping(5000, 32001, "::")),
    ], "127.0.0.1", "m1")
    assert list(found) == ["/shipmate/endpoints/web-app/web/1-v2-ab12-m1"]
    rec = json.loads(found["/shipmate/endpoints/web-app/web/1-v2-ab12-m1"])
    assert (rec["host"], rec["port"], rec["release"], rec["machine"]) == (
        "127.0.0.1", 32000, "v2-ab12", "m1")
