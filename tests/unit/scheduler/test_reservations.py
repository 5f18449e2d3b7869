"""Placement by reservation: a unit goes only where what it reserves fits beside what is
placed there; one that fits nowhere waits, saying why."""

from __future__ import annotations

from shipmate.scheduler.model import Machine
from shipmate.scheduler.placement import Plan, Planner, plan
from shipmate.spec.unitreqs import Requirements

R = Requirements
GiB = 2**30


def machine(mid: str, memory_gib: float = 0, cpus: float = 0, **meta: str) -> Machine:
    return Machine(mid, "", tuple(sorted(meta.items())), cpus, int(memory_gib * GiB))


def run(units: dict[str, Requirements], ms: list[Machine],
        placements: dict[str, tuple[str, ...]] | None = None) -> Plan:
    return plan(units, dict.fromkeys(units, "launched"), ms, placements or {})


def where(p: Plan) -> dict[str, str]:
    return {u: m[0] for u, m in p.placements.items() if len(m) == 1}


def test_units_go_where_their_reservation_fits_fewest_units_first() -> None:
    ms = [machine("m1", 2, 4), machine("m2", 4, 4)]
    units = {"a.service": R(reserve_memory=GiB), "b.service": R(reserve_memory=GiB),
             "c.service": R(reserve_memory=2 * GiB), "d.service": R()}
    p = run(units, ms)
    # a: m1 (tie, by ID); b: m2 (fewer units); c: 2 GiB fits only on m2 (3 GiB free there);
    # d reserves nothing: fewest units wins, m1.
    assert where(p) == {"a.service": "m1", "b.service": "m2", "c.service": "m2",
                        "d.service": "m1"}
    assert p.waiting == {}


def test_a_unit_that_fits_nowhere_waits_with_the_reason() -> None:
    ms = [machine("m1", 1, 2), machine("m2", 1, 2)]
    p = run({"big.service": R(reserve_memory=2 * GiB)}, ms)
    assert p.placements == {}
    assert p.waiting == {"big.service": "needs 2 GiB memory; the largest free is 1 GiB on m1"}
    # what is already placed counts: m1 has 0.5 GiB left, m2 all of its 1 GiB
    units = {"a.service": R(reserve_memory=GiB // 2), "big.service": R(reserve_memory=2 * GiB)}
    assert run(units, ms).waiting == {
        "big.service": "needs 2 GiB memory; the largest free is 1 GiB on m2"}


def test_reasons_for_cpu_for_both_and_for_machines_that_report_nothing() -> None:
    ms = [machine("m1", 8, 1), machine("m2", 1, 8)]
    cpu = run({"x.service": R(reserve_cpus=16)}, ms)
    assert cpu.waiting == {"x.service": "needs 16 CPUs; the most free is 8 CPUs on m2"}
    both = run({"x.service": R(reserve_memory=4 * GiB, reserve_cpus=4)}, ms)
    assert both.waiting == {
        "x.service": "needs 4 GiB memory and 4 CPUs; no machine has both free"}
    bare = run({"x.service": R(reserve_memory=GiB), "y.service": R()}, [machine("m1")])
    assert bare.waiting == {"x.service": "needs 1 GiB memory; no machine reports its memory"}
    assert where(bare) == {"y.service": "m1"}  # reserving nothing fits anywhere


def test_only_machines_the_rules_allow_are_named() -> None:
    ms = [machine("m1", 8, region="us"), machine("m2", 1, region="eu")]
    units = {"eu.service": R(metadata=(("region", ("eu",)),), reserve_memory=2 * GiB)}
    assert run(units, ms).waiting == {
        "eu.service": "needs 2 GiB memory; the largest free is 1 GiB on m2"}
    follower = {"db.service": R(machine_id="m2"),
                "side.service": R(machine_of=("db.service",), reserve_memory=2 * GiB)}
    assert run(follower, ms).waiting == {
        "side.service": "needs 2 GiB memory; the largest free is 1 GiB on m2"}


def test_placed_units_stay_when_a_machine_reports_less() -> None:
    units = {"a.service": R(reserve_memory=2 * GiB), "b.service": R(reserve_memory=GiB)}
    first = run(units, [machine("m1", 4)])
    assert where(first) == {"a.service": "m1", "b.service": "m1"}
    shrunk = run(units, [machine("m1", 1)], first.placements)
    assert shrunk.actions == () and where(shrunk) == where(first)
    more = run({**units, "c.service": R(reserve_memory=GiB)}, [machine("m1", 1)],
               first.placements)
    assert more.waiting == {"c.service": "needs 1 GiB memory; the largest free is 0 B on m1"}


def test_global_units_reserve_on_every_machine_where_they_fit() -> None:
    ms = [machine("m1", 1), machine("m2", 4)]
    units = {"log.service": R(global_=True, reserve_memory=2 * GiB),
             "app.service": R(reserve_memory=3 * GiB)}
    p = run(units, ms)
    assert p.placements["log.service"] == ("m2",)
    assert p.waiting == {
        "app.service": "needs 3 GiB memory; the largest free is 2 GiB on m2",
        "log.service": "not on m1: needs 2 GiB memory; the largest free is 1 GiB on m1"}


def test_replacing_frees_the_replaced_units_reservation() -> None:
    ms = [machine("m1", 2), machine("m2", 1)]
    units = {"new.service": R(replaces=("old.service",), reserve_memory=2 * GiB),
             "old.service": R(reserve_memory=GiB)}
    p = run(units, ms, {"old.service": ("m1",)})
    assert where(p) == {"new.service": "m1", "old.service": "m2"}


def test_the_indexes_follow_units_leaving_and_machines_changing() -> None:
    planner = Planner.load({"a.service": R(reserve_memory=3 * GiB)}, {"a.service": "launched"},
                           [machine("m1", 4), machine("m2", 2)], {})
    planner.replan()
    planner.set_unit("b.service", R(reserve_memory=2 * GiB))
    planner.set_desired("b.service", "launched")
    planner.replan()
    assert planner.placements() == {"a.service": ("m1",), "b.service": ("m2",)}
    planner.set_unit("c.service", R(reserve_memory=2 * GiB))
    planner.set_desired("c.service", "launched")
    assert planner.replan()[1] == {
        "c.service": "needs 2 GiB memory; the largest free is 1 GiB on m1"}
    planner.remove_unit("a.service")  # room on m1 again
    planner.replan()
    assert planner.placement("c.service") == ("m1",)
    planner.set_machine(machine("m3", 8))
    planner.set_unit("d.service", R(reserve_memory=5 * GiB))
    planner.set_desired("d.service", "launched")
    planner.replan()
    assert planner.placement("d.service") == ("m3",)
