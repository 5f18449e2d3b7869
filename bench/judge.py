"""Verdicts of bench/cache.py: pure functions over the figures of interleaved rounds.

A goal that compares two servers is judged on the median of the rounds' ratios: a round
measures the servers back to back, so a slow moment of the machine weighs on both figures of
one ratio. On a small shared machine two identical servers still differ by a few percent
from run to run, so a goal of "at least the other's" is also measured against a control: a
second Shipmate in the same rounds. A ratio below 1.0 that is no further below than Shipmate's
ratio to its own twin, and within :data:`LEVEL_FLOOR`, is LEVEL: the bench cannot tell the
servers apart in this run. Beyond that it is FAIL. Only PASS meets a goal: whether level is
"at least" is not the bench's to decide.
"""

from __future__ import annotations

import itertools
import statistics

Row = list[str]
LEVEL_FLOOR = 0.95  # below this ratio a server is behind, whatever the control shows


def round_orders(servers: int, rounds: int) -> list[tuple[int, ...]]:
    """The order the servers run in, round by round: every permutation in turn, so over a
    multiple of ``servers!`` rounds each server runs in each place equally often (a server
    that ran first or after a given other one is not favoured)."""
    orders = list(itertools.permutations(range(servers)))
    return [orders[r % len(orders)] for r in range(rounds)]


def rotations(servers: int, rounds: int) -> list[list[int]]:
    """The order the servers run in when there are too many for every permutation: round r
    starts from the r-th server, so over ``servers`` rounds each takes each place once."""
    return [[(i + r) % servers for i in range(servers)] for r in range(rounds)]


def ratios(ours: list[float], theirs: list[float]) -> list[float]:
    """Round-by-round ratios of two servers' figures."""
    return [a / b for a, b in zip(ours, theirs, strict=True)]


def verdict(goal: str, ratio: float, limit: float, higher_is_better: bool = True,
            spread: str = "") -> Row:
    """A PASS or FAIL row: ``ratio`` against ``limit``."""
    ok = ratio >= limit if higher_is_better else ratio <= limit
    return ["PASS" if ok else "FAIL", goal, f"{ratio:.2f}x", spread]


def paired(goal: str, ours: list[float], theirs: list[float], limit: float,
           higher_is_better: bool = True) -> Row:
    """A verdict on the median of round-by-round ratios, showing their range."""
    r = ratios(ours, theirs)
    return verdict(goal, statistics.median(r), limit, higher_is_better, spread=spread(r))


def at_least(goal: str, ours: list[float], theirs: list[float],
             control: list[float]) -> Row:
    """"``ours`` at least ``theirs``", with ``control`` the same server as ``ours`` measured
    in the same rounds: PASS at a median ratio of 1.0 or more; below it, LEVEL when ours is
    no further behind theirs than the two identical servers are apart (the control's median
    ratio or its inverse, whichever is below 1.0) and no further than :data:`LEVEL_FLOOR`;
    FAIL beyond that."""
    r = ratios(ours, theirs)
    ratio = statistics.median(r)
    twin = statistics.median(ratios(ours, control))
    shown = f"{spread(r)}; control {twin:.2f}x"
    if ratio >= 1.0:
        state = "PASS"
    elif ratio >= max(min(twin, 1 / twin), LEVEL_FLOOR):
        state = "LEVEL"
    else:
        state = "FAIL"
    return [state, goal, f"{ratio:.2f}x", shown]


def spread(values: list[float], digits: int = 2) -> str:
    """The range of ``values`` as "min-max" ("" for none)."""
    return f"{min(values):.{digits}f}-{max(values):.{digits}f}" if values else ""
