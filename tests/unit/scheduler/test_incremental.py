"""The planner kept between passes reaches the placements a whole pass reaches, while doing
only the work a change touches."""

from __future__ import annotations

import random

import pytest

from shipmate.scheduler.model import DesiredState, Machine
from shipmate.scheduler.placement import Planner, plan
from shipmate.spec.unitreqs import Requirements

GiB = 2**30


def cluster(rng: random.Random, n_machines: int, n_units: int
            ) -> tuple[list[Machine], dict[str, Requirements]]:
    ms = [Machine(f"m{i:02d}", "", (("region", rng.choice(["eu", "us"])),),
                  rng.choice([2.0, 4.0]), rng.choice([2, 4, 8]) * GiB) for i in range(n_machines)]
    units: dict[str, Requirements] = {}
    for i in range(n_units):
        kind = rng.random()
        mem, cpu = rng.choice([0, GiB // 4, GiB // 2, GiB]), rng.choice([0.0, 0.25, 0.5])
        if kind < 0.2:
            reqs = Requirements(conflicts=(f"grp{i % 7}-*",), reserve_memory=mem)
            units[f"grp{i % 7}-{i}.service"] = reqs
            continue
        if kind < 0.35:
            reqs = Requirements(metadata=(("region", ("eu",)),), reserve_cpus=cpu)
        elif kind < 0.45 and units:
            reqs = Requirements(machine_of=(rng.choice(sorted(units)),))
        elif kind < 0.5:
            reqs = Requirements(global_=True, reserve_memory=GiB // 4)
        else:
            reqs = Requirements(reserve_memory=mem, reserve_cpus=cpu)
        units[f"u{i}.service"] = reqs
    return ms, units


@pytest.mark.parametrize("seed", range(12))
def test_incremental_passes_agree_with_a_whole_pass(seed: int) -> None:
    rng = random.Random(seed)
    ms, units = cluster(rng, 12, 80)
    desired: dict[str, DesiredState] = dict.fromkeys(units, "launched")
    planner = Planner.load(units, desired, ms, {})
    planner.replan()
    for _ in range(6):
        before = planner.placements()
        change = rng.choice(["machine dies", "machine joins", "units come", "units stop",
                             "unit destroyed", "machine shrinks"])
        if change == "machine dies" and len(ms) > 2:
            gone = ms.pop(rng.randrange(len(ms)))
            planner.remove_machine(gone.id)
        elif change == "machine joins":
            ms.append(Machine(f"n{rng.randrange(10**6)}", "", (("region", "eu"),), 4.0, 4 * GiB))
            planner.set_machine(ms[-1])
        elif change == "units come":
            _, more = cluster(rng, 0, 10)
            for name, reqs in more.items():
                fresh = f"new{rng.randrange(10**6)}-{name}"
                units[fresh] = Requirements(**{**reqs.__dict__, "machine_of": ()})
                desired[fresh] = "launched"
                planner.set_unit(fresh, units[fresh])
                planner.set_desired(fresh, "launched")
        elif change == "units stop":
            for name in rng.sample(sorted(units), 5):
                desired[name] = "inactive"
                planner.set_desired(name, "inactive")
        elif change == "unit destroyed":
            name = rng.choice(sorted(units))
            del units[name], desired[name]
            planner.remove_unit(name)
            planner.set_desired(name, None)
        else:
            i = rng.randrange(len(ms))
            ms[i] = Machine(ms[i].id, "", ms[i].metadata, 1.0, GiB)
            planner.set_machine(ms[i])
        _, waiting = planner.replan()
        whole = plan(units, desired, ms, before)
        assert planner.placements() == whole.placements, change
        assert waiting == whole.waiting, change
        # and a whole pass from where the planner stands has nothing left to do
        assert plan(units, desired, ms, planner.placements()).actions == ()


def test_a_dead_machine_costs_only_its_units() -> None:
    ms = [Machine(f"m{i:03d}", "", (), 8.0, 16 * GiB) for i in range(200)]
    units = {f"u{i:05d}.service": Requirements(reserve_memory=GiB // 2, reserve_cpus=0.25)
             for i in range(4000)}
    planner = Planner.load(units, dict.fromkeys(units, "launched"), ms, {})
    planner.replan()
    doomed = sorted(u for u, m in planner.placements().items() if m == ("m007",))
    planner.remove_machine("m007")
    checked: list[str] = []
    blocker = planner.cluster.blocker
    planner.cluster.blocker = lambda name, machine: (  # type: ignore[method-assign]
        checked.append(name), blocker(name, machine))[1]
    actions, _ = planner.replan()
    assert sorted({a.unit for a in actions}) == doomed
    assert set(checked) == set(doomed)  # nothing else was looked at again
