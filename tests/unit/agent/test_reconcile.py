"""The agent's pure decisions: which units are ours, start/stop plan, lease-loss rule."""

from __future__ import annotations

from shipmate.agent.reconcile import Heartbeat, plan, units_for_machine


def test_units_for_machine_takes_placed_loaded_or_launched_units_with_files() -> None:
    texts = {"a.service": ("ha", "A"), "b.service": ("hb", "B"), "c.service": ("hc", "C"),
             "g.service": ("hg", "G")}
    desired = {"a.service": "launched", "b.service": "loaded", "c.service": "inactive",
               "g.service": "launched", "gone.service": "launched"}
    placements = {"a.service": ["m1"], "b.service": ["m1"], "c.service": ["m1"],
                  "g.service": ["m1", "m2"], "gone.service": ["m1"], "other.service": ["m2"]}
    mine = units_for_machine("m1", texts, desired, placements)
    assert sorted(mine) == ["a.service", "b.service", "g.service"]
    assert mine["b.service"].desired == "loaded" and mine["a.service"].hash == "ha"
    assert sorted(units_for_machine("m2", texts, desired, placements)) == ["g.service"]


def test_plan_starts_missing_stops_unwanted_and_replaces_changed() -> None:
    p = plan({"a": "1", "b": "2", "c": "3"}, {"b": "2", "c": "old", "d": "4"})
    assert p.stop == ("c", "d") and p.start == ("a", "c")
    assert plan({"a": "1"}, {"a": "1"}).empty


def test_heartbeat_cut_off_after_ttl_once_then_reregisters() -> None:
    hb = Heartbeat(3.0, now=100.0)
    hb.renewed(100.0)
    assert hb.interval == 1.0
    assert not hb.cut_off(103.0)  # exactly TTL: the lease may still live
    assert hb.cut_off(103.1)
    assert not hb.may_run_units and not hb.registered
    assert not hb.cut_off(110.0)  # once
    hb.renewed(111.0)
    assert hb.may_run_units and hb.registered
