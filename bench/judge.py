"""Verdicts of bench/cache.py: pure functions over the figures of interleaved rounds.

A goal that compares two servers is judged on the median of the rounds' ratios: a round
measures the servers back to back, so a slow moment of the machine weighs on both figures of
one ratio.
"""

from __future__ import annotations

import itertools
import statistics

Row = list[str]


def round_orders(servers: int, rounds: int) -> list[tuple[int, ...]]:
    """The order the servers run in, round by round: every permutation in turn, so over a
    multiple of ``servers!`` rounds each server runs in each place equally often (a server
    that ran first or after a given other one is not favoured)."""
    orders = list(itertools.permutations(range(servers)))
    return [orders[r % len(orders)] for r in range(rounds)]


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


def spread(values: list[float], digits: int = 2) -> str:
    """The range of ``values`` as "min-max" ("" for none)."""
    return f"{min(values):.{digits}f}-{max(values):.{digits}f}" if values else ""
