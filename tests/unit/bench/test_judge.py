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


def test_rotations_put_each_server_in_each_place_once_per_cycle() -> None:
    orders = judge.rotations(7, 14)
    for server in range(7):
        places = collections.Counter(order.index(server) for order in orders)
        assert places == dict.fromkeys(range(7), 2)
    assert orders[:2] == [[0, 1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6, 0]]


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


def test_at_least_passes_level_or_ahead() -> None:
    row = judge.at_least("goal", [100.0, 102.0], [100.0, 100.0], [90.0, 110.0])
    assert row[0] == "PASS"
    assert row[2] == "1.01x"


@pytest.mark.parametrize("twin_ratio", [1.03, 0.97])
def test_a_gap_no_wider_than_between_twins_is_level(twin_ratio: float) -> None:
    # ours is 2% behind; in the same rounds ours is 3% ahead of or behind its twin
    ours = [98.0, 98.0]
    row = judge.at_least("goal", ours, [100.0, 100.0], [x / twin_ratio for x in ours])
    assert row[0] == "LEVEL"
    assert row[2] == "0.98x"


def test_a_gap_wider_than_between_twins_fails() -> None:
    row = judge.at_least("goal", [95.0, 95.0], [100.0, 100.0], [96.0, 96.0])
    assert row[0] == "FAIL"
    assert row[3] == "0.95-0.95; control 0.99x"


def test_a_gap_beyond_the_floor_fails_even_between_noisy_twins() -> None:
    ours = [94.0, 94.0]
    row = judge.at_least("goal", ours, [100.0, 100.0], [x / 0.90 for x in ours])
    assert row[0] == "FAIL"
    assert row[3] == "0.94-0.94; control 0.90x"


def test_lower_is_better_verdicts() -> None:
    assert judge.verdict("rss", 1.1, 1.2, higher_is_better=False)[0] == "PASS"
    assert judge.verdict("rss", 1.3, 1.2, higher_is_better=False)[0] == "FAIL"
