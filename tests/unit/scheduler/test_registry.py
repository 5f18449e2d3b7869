"""The registry: key layout, submit/destroy/desired rules, records round-trip."""

from __future__ import annotations

import pytest

from shipmate.errors import ConflictError, NotFoundError, ValidationError
from shipmate.scheduler.model import Machine, Placement, UnitRecord, UnitState, parse_metadata
from shipmate.scheduler.registry import (
    LEADER_KEY,
    PREFIX,
    Registry,
    desired_key,
    machine_key,
    unit_key,
)
from shipmate.store.base import Store
from shipmate.testing import FakeClock

SVC = "[Service]\nExecStart=/bin/sleep 1000\n[X-Fleet]\nConflicts=web*\n"


async def test_submit_stores_unit_and_inactive_state(store: Store) -> None:
    reg = Registry(store)
    rec = await reg.submit("web.service", SVC)
    assert rec.requirements.conflicts == ("web*",)
    assert await reg.unit("web.service") == rec
    assert await reg.desired() == {"web.service": "inactive"}
    assert (await store.get(unit_key("web.service"))) is not None
    assert (await store.get(desired_key("web.service"))) is not None
    # same content again: fine; different content: refused like fleet
    assert await reg.submit("web.service", SVC + "\n# comment\n") == rec
    with pytest.raises(ConflictError, match="different content"):
        await reg.submit("web.service", SVC.replace("1000", "5"))


async def test_invalid_unit_stores_nothing(store: Store) -> None:
    reg = Registry(store)
    before = await store.revision()
    for name, text in [("a.service", "[Service]\nExecStart=x\n[X-Fleet]\nGlobal=1\nMachineOf=b"),
                       ("a.socket", "[Socket]\nListenStream=80\n"),
                       ("a.timer", "[Timer]\nOnCalendar=daily\n"),
                       ("a.service", "[Service]\nExecStart=x\n[X-Fleet]\nConflicts=b*\n"
                                     "Replaces=c.service\n"),
                       ("a.service", "[Service]\nExecStart=x\n[X-Fleet]\nMachineID=m1\n"
                                     "Replaces=c.service\n"),
                       ("a.service", "[Service]\nType=forking\nExecStart=/usr/sbin/x\n"),
                       ("a.service", "[Service]\nExecStart\n")]:
        with pytest.raises(ValidationError):
            await reg.submit(name, text)
    assert await store.revision() == before
    assert (await store.range(PREFIX))[0] == []


async def test_templates_and_instances(store: Store) -> None:
    reg = Registry(store)
    await reg.submit("hello@.service", "[Service]\nExecStart=/bin/echo %i\n[X-Fleet]\n"
                     "Conflicts=hello@*\n")
    with pytest.raises(ValidationError, match="cannot activate template"):
        await reg.set_desired("hello@.service", "launched")
    inst = await reg.submit("hello@1.service")
    assert inst.text == (await reg.unit("hello@.service")).text  # type: ignore[union-attr]
    await reg.set_desired("hello@1.service", "launched")
    assert (await reg.desired())["hello@1.service"] == "launched"
    with pytest.raises(NotFoundError, match="template"):
        await reg.submit("bye@1.service")


async def test_set_desired_and_destroy(store: Store) -> None:
    reg = Registry(store)
    with pytest.raises(NotFoundError):
        await reg.set_desired("nope.service", "loaded")
    await reg.submit("a.service", SVC)
    with pytest.raises(ValidationError):
        await reg.set_desired("a.service", "running")
    await reg.set_desired("a.service", "launched")
    await store.put("/shipmate/fleet/placements/a.service",
                    b'{"unit":"a.service","machines":["m1"]}')
    assert await reg.placed_on("m1") == ["a.service"]
    assert await reg.destroy("a.service") is True
    assert await reg.destroy("a.service") is False
    assert (await store.range(PREFIX))[0] == []


async def test_machines_and_states_live_under_leases(store: Store, clock: FakeClock) -> None:
    reg = Registry(store)
    lease = await store.grant(3.0)
    m = Machine("m1", "127.0.0.2", parse_metadata("region=eu, disk=ssd"))
    await reg.register_machine(m, lease)
    st = UnitState("a.service", "m1", "loaded", "active", "running", "abc")
    await reg.report_state(st, lease)
    assert await reg.machines() == {"m1": m}
    assert m.metadata_dict == {"disk": "ssd", "region": "eu"}
    assert await reg.unit_states() == [st]
    snap = await reg.snapshot()
    assert snap.machines == {"m1": m} and snap.states == [st]
    assert snap.mod(machine_key("m1")) > 0 and snap.mod(LEADER_KEY) == 0
    await clock.advance(3.5)
    assert await reg.machines() == {} and await reg.unit_states() == []
    with pytest.raises(ValidationError):
        await reg.register_machine(Machine("../etc"), lease)


def test_records_round_trip_json() -> None:
    rec = UnitRecord("a.service", "x", "h")
    assert UnitRecord.from_json(rec.to_json()) == rec
    p = Placement("g.service", ("m1", "m2"))
    assert Placement.from_json(p.to_json()) == p
    with pytest.raises(ValidationError):
        parse_metadata("region")
