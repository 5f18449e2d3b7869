"""The audit trail's pure parts: keys, the key blocks that hold the newest events, cleaning
and the fixed-width rows of ``shipmate events``."""

from __future__ import annotations

import pytest

from shipmate.web.events import (
    PREFIX,
    AuditEvent,
    block_size,
    blocks_back,
    event_key,
    legend,
    render_row,
    seq_of,
)


def _covered(prefixes: list[str]) -> set[int]:
    """Every event number whose key one of ``prefixes`` matches."""
    found: set[int] = set()
    for prefix in prefixes:
        digits = prefix.removeprefix(PREFIX)
        size = 10 ** (12 - len(digits))
        span = range(int(digits or "0") * size, int(digits or "0") * size + size)
        assert all(event_key(n).startswith(prefix) for n in (span[0], span[-1]))
        assert not event_key(span[-1] + 1).startswith(prefix)
        found.update(span)
    return found


def test_keys_sort_in_recording_order() -> None:
    keys = [event_key(n) for n in (9, 10, 99, 100, 12_345)]
    assert keys == sorted(keys)
    assert [seq_of(k) for k in keys] == [9, 10, 99, 100, 12_345]
    assert seq_of("/shipmate/events-seq") is None
    assert seq_of(PREFIX + "12") is None


@pytest.mark.parametrize(("newest", "oldest", "n"), [
    (12_345, 2_346, 20), (12_345, 2_346, 500), (99, 1, 20), (100, 1, 1), (5, 1, 10_000),
])
def test_blocks_hold_the_window_newest_first(newest: int, oldest: int, n: int) -> None:
    size = block_size(n)
    prefixes = list(blocks_back(newest, oldest, size))
    covered = _covered(prefixes)
    assert set(range(oldest, newest + 1)) <= covered
    # Newest block first; the first two blocks hold at least the newest n.
    first_two = _covered(prefixes[:2])
    assert set(range(max(oldest, newest - n + 1), newest + 1)) <= first_two
    assert max(_covered(prefixes[:1])) >= newest


def test_block_size_is_a_power_of_ten_of_at_least_n() -> None:
    assert [block_size(n) for n in (0, 1, 20, 100, 101, 10_000)] == \
        [100, 100, 100, 100, 1000, 10_000]
    assert list(blocks_back(0, 1, 100)) == []


def test_text_is_cleaned_and_capped() -> None:
    event = AuditEvent(0.0, "alice", "ssh", "domains:add", "web",
                       "add \x1b[31mevil\x07.example\n" + "x" * 1000)
    assert "\x1b" not in event.summary and "\n" not in event.summary
    assert event.summary.startswith("add ?[31mevil?.example ")
    assert len(event.summary) == 300 and event.summary.endswith("...")


def test_outcome_must_be_known() -> None:
    with pytest.raises(ValueError, match="outcome"):
        AuditEvent(0.0, "root", "local", "ps:scale", outcome="maybe")


def test_json_round_trip_and_bad_values() -> None:
    event = AuditEvent(1.5, "alice", "ssh", "config:set", "web", "set SECRET", seq=7,
                       duration=0.12345)
    assert AuditEvent.decode(event.encode()) == AuditEvent(
        1.5, "alice", "ssh", "config:set", "web", "set SECRET", seq=7, duration=0.123)
    assert AuditEvent.decode(b"not json") is None
    assert AuditEvent.decode(b"[1]") is None
    assert AuditEvent.decode(b'{"time": 1}') is None  # fields missing


def test_rows_line_up_under_the_legend() -> None:
    ok = AuditEvent(0.0, "alice", "ssh", "config:set", "web", "set A B")
    failed = AuditEvent(86_400.0, "root", "local", "push", "api", "revision abc1234",
                        outcome="failed", error="build failed")
    rows = [legend(), render_row(ok), render_row(failed)]
    assert rows[1].startswith("1970-01-01T00:00:00Z alice")
    assert rows[2].endswith("revision abc1234 (failed: build failed)")
    starts = [[row.index(word) for word in words] for row, words in zip(
        rows, [("ACTOR", "VERB", "APP", "SUMMARY"), ("alice", "config:set", "web", "set A"),
               ("root", "push", "api", "revision")], strict=True)]
    assert starts[0] == starts[1] == starts[2]
