"""app.json cron entries: parsing, ids, bad lines, and which slot is due (pure)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from shipmate import cronspec
from shipmate.errors import ValidationError
from shipmate.paas import cron
from shipmate.paas.builders import appjson
from shipmate.paas.model import Release

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
EVERY_MINUTE = cronspec.parse("* * * * *")


def at(minute: int, second: float = 0) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minute, seconds=second)


def test_entries_are_read_with_stable_short_ids() -> None:
    parsed = appjson.parse("""{
  // Dokku's own example
  "cron": [
    {"command": "npm run send-email", "schedule": "@daily"},
    {"command": "python3 task.py", "schedule": "*/5  * * * *", "maintenance": true}
  ]
}""")
    first, second = parsed.cron
    assert (first.schedule, first.command, first.maintenance) == (
        "@daily", "npm run send-email", False)
    assert second.schedule == "*/5 * * * *" and second.maintenance  # spaces normalised
    assert len(first.id) == 10 and first.id.isalnum() and first.id != second.id
    # the same schedule and command keep their id in another deploy, another app
    assert cron.entry_id("@daily", "npm run send-email") == first.id
    assert cron.entry_id("@hourly", "npm run send-email") != first.id
    assert parsed.ignored == ()


def test_a_bad_schedule_names_the_app_json_line_and_the_entry() -> None:
    text = """{
  "name": "x",
  "cron": [
    {"command": "echo ok", "schedule": "@daily"},
    {"command": "echo bad",
     "schedule": "61 * * * *"}
  ]
}"""
    with pytest.raises(ValidationError) as err:
        appjson.parse(text)
    message = err.value.message
    assert message.startswith("app.json line 6, cron entry 2:")
    assert "minute '61' is outside 0-59" in message
    assert '{"command": "echo bad", "schedule": "61 * * * *"}' in message
    assert "*/5 * * * *" in (err.value.hint or "")


@pytest.mark.parametrize(("entry", "why"), [
    ({"command": "x", "schedule": "* * *"}, "has 3 fields, not 5"),
    ({"command": "x", "schedule": "@reboot"}, "@reboot is not supported"),
    ({"command": "x", "schedule": "0 0 30 2 *"}, "never runs"),
    ({"command": "", "schedule": "@daily"}, "needs a command"),
    ({"command": "x"}, "needs a schedule"),
    ({"command": "x", "schedule": "@daily", "maintenance": "yes"}, "maintenance must be"),
    ({"command": "x", "schedule": "@daily", "concurrency_policy": "sometimes"},
     "concurrency_policy must be one of allow, forbid, replace"),
    ("echo", "is not an object"),
])
def test_bad_entries_are_refused_with_what_is_wrong(entry: object, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        appjson.parse(json.dumps({"cron": [entry]}))


def test_cron_must_be_a_list_and_entries_must_differ() -> None:
    with pytest.raises(ValidationError, match="must be a list"):
        appjson.parse('{"cron": {"command": "x", "schedule": "@daily"}}')
    same = {"command": "x", "schedule": "@daily"}
    with pytest.raises(ValidationError, match="cron entry 2: repeats an earlier entry"):
        appjson.parse(json.dumps({"cron": [same, same]}))


def test_concurrency_policy_is_named_in_the_ignored_notice() -> None:
    parsed = appjson.parse(json.dumps({"cron": [
        {"command": "x", "schedule": "@daily", "concurrency_policy": "forbid"}],
        "addons": []}))
    assert parsed.ignored == ("addons", "cron.concurrency_policy")


def test_the_release_records_its_entries() -> None:
    entry = cron.CronEntry("@hourly", "echo hi")
    release = Release(1, "sha256:x", {}, {}, {"web": ""}, "abc", 1.0,
                      cron=(entry.to_json(),))
    back = Release.from_json(release.to_json())
    assert cron.entries_of(back.cron) == (entry,)
    # a release written before cron existed reads with none
    data = json.loads(release.to_json())
    del data["cron"]
    assert Release.from_json(json.dumps(data)).cron == ()


def test_a_procfile_type_name_runs_its_command() -> None:
    procs = {"web": "node server.js", "report": "node report.js --daily"}
    assert cron.resolve_command("report", procs) == "node report.js --daily"
    assert cron.resolve_command("node report.js", procs) == "node report.js"


# --- decide ------------------------------------------------------------------------------------

def test_the_due_slot_fires_once() -> None:
    state = cron.EntryState()
    decision = cron.decide(EVERY_MINUTE, state, T0.timestamp() - 30, at(0, 0.2), 300)
    assert decision == cron.Decision(at(0), fire=True, missed=0)
    recorded = cron.EntryState(slot=cron.iso(at(0)))
    assert cron.decide(EVERY_MINUTE, recorded, 0, at(0, 40), 300) is None
    assert cron.decide(EVERY_MINUTE, recorded, 0, at(1, 0.1), 300) == \
        cron.Decision(at(1), fire=True, missed=0)


def test_slots_before_the_release_existed_never_run() -> None:
    # a crontab line added at 12:00:30 does not run at 12:00
    assert cron.decide(EVERY_MINUTE, cron.EntryState(), at(0, 30).timestamp(), at(0, 40),
                       300) is None
    assert cron.decide(EVERY_MINUTE, cron.EntryState(), at(0, 30).timestamp(), at(1, 1),
                       300) == cron.Decision(at(1), fire=True, missed=0)


def test_a_release_made_after_a_late_slot_does_not_hold_a_known_entry_back() -> None:
    # config:set at 12:01:02 while no leader fired 12:01 yet: 12:01 still runs
    recorded = cron.EntryState(slot=cron.iso(at(0)))
    assert cron.decide(EVERY_MINUTE, recorded, at(1, 2).timestamp(), at(1, 5), 300) == \
        cron.Decision(at(1), fire=True, missed=0)


def test_a_late_slot_within_grace_fires_and_older_ones_are_counted_as_missed() -> None:
    recorded = cron.EntryState(slot=cron.iso(at(0)))
    decision = cron.decide(EVERY_MINUTE, recorded, 0, at(4, 20), 300)
    assert decision == cron.Decision(at(4), fire=True, missed=3)


def test_a_slot_later_than_grace_is_recorded_unrun() -> None:
    hourly = cronspec.parse("@hourly")
    recorded = cron.EntryState(slot=cron.iso(at(0)))
    decision = cron.decide(hourly, recorded, 0, at(60 + 10), 300)
    assert decision == cron.Decision(at(60), fire=False, missed=0)


def test_a_resume_counts_slots_from_then_only() -> None:
    recorded = cron.EntryState(slot=cron.iso(at(0)), since=at(5, 30).timestamp())
    assert cron.decide(EVERY_MINUTE, recorded, 0, at(5, 40), 300) is None
    assert cron.decide(EVERY_MINUTE, recorded, 0, at(6, 1), 300) == \
        cron.Decision(at(6), fire=True, missed=0)


def test_history_keeps_the_last_runs_and_updates_a_run_in_place() -> None:
    history: list[cron.RunRecord] = []
    for i in range(cron.HISTORY + 3):
        history = cron.with_run(history, cron.RunRecord(f"r{i}", "schedule", "", "m", i))
    assert [r.run for r in history] == [f"r{i}" for i in range(3, cron.HISTORY + 3)]
    done = cron.RunRecord("r5", "schedule", "", "m", 5, duration=1.5, exit_code=0,
                          output=("ok",))
    history = cron.with_run(history, done)
    assert history[2] == done and len(history) == cron.HISTORY
    assert cron.history_from_json(cron.history_to_json(history)) == history
    assert done.summary() == "exit 0 in 1.5s"
    assert cron.tail("\n".join(str(i) for i in range(9))) == ("4", "5", "6", "7", "8")


def test_ids_are_checked_before_they_reach_a_key() -> None:
    with pytest.raises(ValidationError, match="Invalid cron id"):
        cron.validate_id("../x")
