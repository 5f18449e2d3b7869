"""Deploy step timings: laps, the push output's form, the release record's breakdown."""

from __future__ import annotations

import json

from shipmate.paas.model import Release
from shipmate.paas.timings import Stopwatch, summary, took


def test_laps_add_up_to_the_breakdown_and_the_total() -> None:
    now = [100.0]
    watch = Stopwatch(lambda: now[0])
    for step, seconds in (("build", 4.2), ("start", 0.8), ("checks", 3.05), ("switch", 0.2)):
        now[0] += seconds
        assert abs(watch.lap(step) - seconds) < 1e-9
    now[0] += 0.1  # after the last step, before the record is written
    assert watch.breakdown() == {"build": 4.2, "start": 0.8, "checks": 3.05, "switch": 0.2,
                                 "total": 8.35}


def test_shown_as_dokku_style_steps_and_a_summary() -> None:
    assert f"-----> Build done {took(4.249)}" == "-----> Build done (4.2 s)"
    timings = {"switch": 0.2, "build": 4.2, "start": 0.8, "checks": 3.1, "total": 8.3}
    assert summary(timings) == "8.3 s: build 4.2 s, start 0.8 s, checks 3.1 s, switch 0.2 s"
    assert summary({"start": 1.0}) == "start 1.0 s"
    assert summary({}) == ""


def test_a_release_recorded_before_timings_existed_reads_back() -> None:
    release = Release(1, "sha256:x", {}, {}, {"web": ""}, "a" * 40, 0.0,
                      timings={"build": 1.5, "total": 2.0})
    assert Release.from_json(release.to_json()) == release
    old = json.loads(release.to_json())
    del old["timings"]
    assert Release.from_json(json.dumps(old)).timings == {}
