"""bench/deploy.py: the figures and verdicts it prints (pure)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import deploy  # bench/ is not a package


def test_nearest_rank_percentile() -> None:
    pushes = [float(n) for n in range(1, 21)]  # 1..20
    assert deploy.percentile(pushes, 95) == 19.0
    assert deploy.percentile(pushes, 50) == 10.0
    assert deploy.percentile([3.0], 95) == 3.0


def test_a_stall_fails_the_flask_spread_goal() -> None:
    steady = [4.2] * 19
    ok = deploy.verdicts("flask", [*steady, 4.9], 3.0)
    assert [passed for passed, _ in ok] == [True, True]
    stalled = deploy.verdicts("flask", [*steady, 21.0], 3.0)
    assert [passed for passed, _ in stalled] == [False, True]
    assert deploy.verdicts("flask", [5.0] * 20, 3.0)[1][0] is False  # over wait + 1.5 s
    assert deploy.verdicts("node", [1.2] * 20, 3.0) == [(True, "median 1.20 s <= 1.5 s")]
