"""bench/judge.py: the verdicts of bench/cache.py."""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import judge  # bench/ is not a package


def test_six_rounds_put_each_of_three_servers_in_each_place_twice() -> None:
    orders = judge.round_orders(3, 6)
    assert len(set(orders)) == 6
    for server in range(3):
        places = collections.Counter(order.index(server) for order in orders)
        assert places == {0: 2, 1: 2, 2: 2}


def test_orders_start_again_after_every_permutation() -> None:
    assert judge.round_orders(2, 5) == [(0, 1), (1, 0), (0, 1), (1, 0), (0, 1)]


def test_paired_goals_are_judged_on_the_median_of_round_ratios() -> None:
    # medians of the figures (100 vs 100) would tie; the rounds say ours is ahead 2 of 3
    ours, theirs = [100.0, 110.0, 50.0], [90.0, 100.0, 100.0]
    row = judge.paired("goal", ours, theirs, 1.0)
    assert row == ["PASS", "goal", "1.10x", "0.50-1.11"]
    assert judge.paired("goal", ours, theirs, 1.2)[0] == "FAIL"


def test_rounds_must_pair_up() -> None:
    with pytest.raises(ValueError):
        judge.ratios([1.0, 2.0], [1.0])


def test_a_ratio_goal_below_one_passes_at_its_limit() -> None:
    # the large-file goal: at least 0.9x the other's, round by round
    assert judge.paired("goal", [91.0, 95.0], [100.0, 100.0], 0.9)[0] == "PASS"
    assert judge.paired("goal", [85.0, 89.0], [100.0, 100.0], 0.9)[0] == "FAIL"


def test_lower_is_better_verdicts() -> None:
    assert judge.verdict("rss", 1.1, 1.2, higher_is_better=False)[0] == "PASS"
    assert judge.verdict("rss", 1.3, 1.2, higher_is_better=False)[0] == "FAIL"
