"""How long each step of a deploy took, so a slow deploy explains itself.

A :class:`Stopwatch` runs from the start of a push (or of a redeploy); each step ends with a
:meth:`Stopwatch.lap`, whose time goes into that step's push output line
(``-----> Build done (4.2 s)``) and into the release record (``timings``, shown by
``releases APP --format json``). Steps: ``build``, ``release`` (the Procfile's release
command, when there is one), ``start`` (until every new instance runs and is published),
``checks`` (health checks and the stay-up wait), ``switch`` (until the routers serve the new
release); ``total`` is the whole push.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

STEP_NAMES = {"build": "build", "release": "release command", "start": "start",
              "checks": "checks", "switch": "switch"}


class Stopwatch:
    """Lap times of a deploy's steps (seconds, on ``now``: monotonic by default)."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._began = self._last = now()
        self.steps: dict[str, float] = {}

    def lap(self, step: str) -> float:
        """End ``step`` now: the seconds since the previous lap (or the start), recorded."""
        now = self._now()
        took, self._last = now - self._last, now
        self.steps[step] = round(self.steps.get(step, 0.0) + took, 3)
        return took

    def total(self) -> float:
        """Seconds since the start."""
        return self._now() - self._began

    def breakdown(self) -> dict[str, float]:
        """What the release record keeps: each step's seconds and the ``total``."""
        return {**self.steps, "total": round(self.total(), 3)}


def took(seconds: float) -> str:
    """``(4.2 s)``: how a step's time is shown."""
    return f"({seconds:.1f} s)"


def summary(timings: Mapping[str, float]) -> str:
    """``8.3 s: build 4.2 s, start 0.8 s, checks 3.1 s, switch 0.2 s`` (known steps only, in
    their order; empty when nothing was timed)."""
    parts = [f"{STEP_NAMES[s]} {timings[s]:.1f} s" for s in STEP_NAMES if s in timings]
    if "total" not in timings:
        return ", ".join(parts)
    return f"{timings['total']:.1f} s" + (": " + ", ".join(parts) if parts else "")
