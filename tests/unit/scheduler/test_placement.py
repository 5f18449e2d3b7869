"""Placement follows fleet's rules and is deterministic."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from shipmate.scheduler.model import DesiredState, Machine
from shipmate.scheduler.placement import Plan, Schedule, Unschedule, plan
from shipmate.spec.unitreqs import Requirements

R = Requirements


def machines(*ids: str, **meta: dict[str, str]) -> list[Machine]:
    return [Machine(i, "", tuple(sorted(meta.get(i, {}).items()))) for i in ids]


def run(units: Mapping[str, Requirements], ms: Sequence[Machine],
        placements: Mapping[str, Sequence[str]] | None = None,
        desired: Mapping[str, DesiredState] | None = None) -> Plan:
    want: dict[str, DesiredState] = {u: "launched" for u in units}
    want.update(desired or {})
    return plan(units, want, ms, placements or {})


def where(p: Plan) -> dict[str, str]:
    return {u: m[0] for u, m in p.placements.items() if len(m) == 1}


def test_fewest_units_first_ties_by_machine_id() -> None:
    p = run({f"u{i}.service": R() for i in range(5)}, machines("m2", "m1", "m3"))
    assert where(p) == {"u0.service": "m1", "u1.service": "m2", "u2.service": "m3",
                        "u3.service": "m1", "u4.service": "m2"}
    assert all(isinstance(a, Schedule) for a in p.actions)


def test_walkthrough_conflicts_three_units_two_machines() -> None:
    units = {f"code.it.{i}.service": R(conflicts=("code.it.*.service",)) for i in (1, 2, 3)}
    p = run(units, machines("a", "b"))
    assert sorted(where(p).values()) == ["a", "b"]
    assert list(p.waiting) == ["code.it.3.service"]
    p3 = run(units, machines("a", "b", "c"))
    assert sorted(where(p3).values()) == ["a", "b", "c"] and not p3.waiting


def test_conflicts_apply_in_both_directions() -> None:
    units = {"a.service": R(conflicts=("b.*",)), "b.service": R()}
    p = run(units, machines("m1"))
    assert where(p) == {"a.service": "m1"} and "b.service" in p.waiting
    # already co-located (e.g. the conflict was added later): one is moved off
    p2 = run(units, machines("m1", "m2"), {"a.service": ["m1"], "b.service": ["m1"]})
    assert Unschedule("a.service", "m1", "unable to run on m1: conflicts with b.service") in \
        p2.actions
    assert where(p2) == {"a.service": "m2", "b.service": "m1"}


def test_five_mutually_conflicting_units_on_three_machines() -> None:
    units = {f"x{i}.service": R(conflicts=("x*",)) for i in range(5)}
    p = run(units, machines("m1", "m2", "m3"))
    assert len(set(where(p).values())) == 3 and len(p.waiting) == 2
    # destroy one that runs: a waiting one takes its machine
    gone = next(u for u, m in where(p).items() if m == "m2")
    rest = {u: r for u, r in units.items() if u != gone}
    p2 = run(rest, machines("m1", "m2", "m3"), p.placements)
    assert Unschedule(gone, "m2", "unit destroyed") in p2.actions
    assert sorted(where(p2).values()) == ["m1", "m2", "m3"] and len(p2.waiting) == 1


def test_machine_of_follows_and_waits() -> None:
    units = {"app.service": R(machine_of=("db.service",)), "db.service": R()}
    p = run(units, machines("m1", "m2"), {"db.service": ["m2"]})
    assert where(p) == {"app.service": "m2", "db.service": "m2"}
    p2 = run(units, machines("m1", "m2"), desired={"db.service": "inactive"})
    assert "app.service" in p2.waiting and "db.service" not in p2.placements
    # follower sorted before its peer is still placed in one plan
    units3 = {"a.service": R(machine_of=("z.service",)), "z.service": R()}
    assert len(set(where(run(units3, machines("m1", "m2", "m3"))).values())) == 1


def test_follower_leaves_when_peer_moves() -> None:
    units = {"app.service": R(machine_of=("db.service",)), "db.service": R()}
    p = run(units, machines("m1"), {"db.service": ["m2"], "app.service": ["m2"]})
    assert Unschedule("db.service", "m2", "machine m2 went away") in p.actions
    assert where(p) == {"app.service": "m1", "db.service": "m1"}


def test_machine_id_and_metadata() -> None:
    ms = machines("m1", "m2", "m3", m1={"region": "eu"}, m2={"region": "us", "disk": "ssd"},
                  m3={"region": "ap", "disk": "ssd"})
    units = {
        "pinned.service": R(machine_id="m3"),
        "missing.service": R(machine_id="m9"),
        "ssd.service": R(metadata=(("disk", ("ssd",)), ("region", ("eu", "us")))),
        "none.service": R(metadata=(("region", ("mars",)),)),
    }
    p = run(units, ms)
    assert where(p) == {"pinned.service": "m3", "ssd.service": "m2"}
    assert set(p.waiting) == {"missing.service", "none.service"}


def test_global_units_on_every_matching_machine() -> None:
    ms = machines("m1", "m2", "m3", m1={"role": "edge"}, m3={"role": "edge"})
    units = {"log.service": R(global_=True), "edge.service": R(global_=True,
             metadata=(("role", ("edge",)),)), "side.service": R(machine_of=("edge.service",))}
    p = run(units, ms, {"log.service": ["m1", "m9"]})
    assert p.placements["log.service"] == ("m1", "m2", "m3")
    assert p.placements["edge.service"] == ("m1", "m3")
    assert Unschedule("log.service", "m9", "machine m9 went away") in p.actions
    assert Schedule("log.service", "m2", "global unit") in p.actions
    assert p.placements["side.service"] in (("m1",), ("m3",))
    stopped = run(units, ms, p.placements, desired={"log.service": "inactive"})
    assert "log.service" not in stopped.placements
    assert sum(isinstance(a, Unschedule) for a in stopped.actions) == 3


def test_replaces_moves_the_replaced_unit() -> None:
    units = {"new.service": R(machine_id="m1", replaces=("old.service",)), "old.service": R()}
    p = run(units, machines("m1", "m2"), {"old.service": ["m1"]})
    assert Unschedule("old.service", "m1", "replaced by new.service") in p.actions
    assert where(p) == {"new.service": "m1", "old.service": "m2"}
    # the replaced unit is never put next to its replacer
    p2 = run(units, machines("m1"), {"new.service": ["m1"]})
    assert "old.service" in p2.waiting


def test_inactive_and_templates_not_placed_and_stable_when_converged() -> None:
    units = {"a.service": R(), "b.service": R(), "t@.service": R()}
    p = run(units, machines("m1", "m2"), desired={"b.service": "inactive"})
    assert set(p.placements) == {"a.service"}
    again = run(units, machines("m1", "m2"), p.placements, desired={"b.service": "inactive"})
    assert again.actions == () and again.placements == p.placements


def test_deterministic_regardless_of_input_order() -> None:
    units = {f"u{i}.service": R(conflicts=(f"u{i % 7}*",)) for i in range(60)}
    a = run(units, machines(*(f"m{i}" for i in range(9))))
    b = run(dict(reversed(list(units.items()))), machines(*(f"m{i}" for i in range(8, -1, -1))))
    assert a == b


def test_two_thousand_units_on_a_hundred_machines_is_fast_and_even() -> None:
    units: dict[str, Requirements] = {}
    for i in range(2000):
        units[f"svc{i}.service"] = R(conflicts=(f"svc{i}.*",)) if i % 3 else R()
    ms = machines(*(f"m{i:03d}" for i in range(100)))
    start = time.perf_counter()
    p = run(units, ms)
    elapsed = time.perf_counter() - start
    counts: dict[str, int] = {}
    for m in where(p).values():
        counts[m] = counts.get(m, 0) + 1
    assert len(where(p)) == 2000 and set(counts.values()) == {20}
    assert elapsed < 5.0
