"""Extra networks of a container spec: repeated ``Network=`` in units, the hash of specs
without them unchanged, and networks of services made by the engine on demand."""

from __future__ import annotations

from shipmate.converge.units import render_unit
from shipmate.spec.container import make_spec, spec_from_json, spec_hash
from shipmate.spec.unitcontainer import container_spec
from shipmate.spec.units import parse_unit
from shipmate.testing.engine import FakeEngine


def test_repeated_network_lines_make_the_first_the_containers_own_and_join_the_rest() -> None:
    text = "[Container]\nImage=img\nNetwork=shipmate-svc-a\nNetwork=shipmate-svc-b\n"
    unit = parse_unit("x.container", text)
    spec = container_spec(unit.file, "x.container", hostname="h", machine_id="m")
    assert (spec.network, spec.networks) == ("shipmate-svc-a", ("shipmate-svc-b",))
    again = parse_unit("x.container", render_unit(spec))
    assert container_spec(again.file, "x.container", hostname="h", machine_id="m") == spec
    assert spec_from_json(spec.to_json()) == spec


def test_a_spec_without_extra_networks_hashes_as_before_the_field_existed() -> None:
    spec = make_spec("cc", "img", env={"A": "1"})
    assert "networks" not in spec.to_json()
    # The value computed before `networks` existed: running containers are adopted.
    assert spec_hash(spec) == "822084ecf53c5c7361ae10ff1378ced5d5ef5398bef7ab69dc96b5958cd97040"
    assert spec_hash(make_spec("cc", "img", env={"A": "1"}, networks=["nn"])) != spec_hash(spec)


async def test_the_engine_makes_missing_service_networks_only() -> None:
    engine = FakeEngine()
    engine.add_image("img")
    await engine.create(make_spec("cc", "img", network="shipmate-svc-a",
                                  networks=["shipmate-svc-b", "other"]))
    assert set(engine.networks) == {"shipmate-svc-a", "shipmate-svc-b"}
