"""Output shipping bookkeeping: engine log lines, the cursor, and the per-container state file."""

from __future__ import annotations

from pathlib import Path

from agent_plugin_docker.runstate import Cursor, RunState, parse_log, timestamp_key


def raw(*entries: tuple[str, str]) -> bytes:
    return "".join(f"{stamp} {text}\n" for stamp, text in entries).encode()


def test_timestamps_with_any_number_of_fractional_digits_order_correctly() -> None:
    a = timestamp_key("2026-01-02T03:04:05.1Z")
    b = timestamp_key("2026-01-02T03:04:05.099999999Z")
    c = timestamp_key("2026-01-02T03:04:06Z")
    assert a is not None and b is not None and c is not None
    assert b < a < c
    assert a == (a[0], 100_000_000)
    assert timestamp_key("not-a-time") is None
    assert timestamp_key("2026-01-02T03:04:05.5+01:00") == (a[0] - 3600, 500_000_000)


def test_parse_log_keeps_empty_lines_and_drops_carriage_returns() -> None:
    lines = parse_log(
        raw(("2026-01-02T03:04:05.1Z", "one\r"), ("2026-01-02T03:04:05.2Z", ""), ("2026-01-02T03:04:05.3Z", "a b"))
    )
    assert [line.text for line in lines] == ["one", "", "a b"]


def test_an_unfinished_last_line_is_a_line_too() -> None:
    lines = parse_log(b"2026-01-02T03:04:05.1Z done\n2026-01-02T03:04:05.2Z partial")
    assert [line.text for line in lines] == ["done", "partial"]


def test_a_new_cursor_ships_everything_and_then_only_what_follows() -> None:
    first = parse_log(raw(("2026-01-02T03:04:05.1Z", "a"), ("2026-01-02T03:04:05.2Z", "b")))
    cursor = Cursor()
    assert cursor.since() is None
    assert cursor.unshipped(first) == first
    cursor.advance(first, first)
    assert cursor.stamp == "2026-01-02T03:04:05.2Z" and cursor.count == 1
    # The next fetch starts a second earlier, so it repeats lines already shipped.
    assert cursor.since() == timestamp_key("2026-01-02T03:04:04Z")[0]  # type: ignore[index]
    second = parse_log(
        raw(("2026-01-02T03:04:05.1Z", "a"), ("2026-01-02T03:04:05.2Z", "b"), ("2026-01-02T03:04:05.3Z", "c"))
    )
    assert [line.text for line in cursor.unshipped(second)] == ["c"]


def test_lines_sharing_the_cursor_timestamp_are_counted() -> None:
    stamp = "2026-01-02T03:04:05.5Z"
    fetched = parse_log(raw((stamp, "x"), (stamp, "y")))
    cursor = Cursor(stamp, 1)  # "x" was shipped, then "y" came with the same timestamp
    new = cursor.unshipped(fetched)
    assert [line.text for line in new] == ["y"]
    cursor.advance(fetched, new)
    assert (cursor.stamp, cursor.count) == (stamp, 2)
    assert cursor.unshipped(fetched) == []


def test_a_line_out_of_time_order_after_the_cursor_is_still_shipped() -> None:
    # stdout and stderr lines are stamped apart, so file order can disagree with time order.
    fetched = parse_log(raw(("2026-01-02T03:04:05.2Z", "out"), ("2026-01-02T03:04:05.1Z", "err")))
    cursor = Cursor("2026-01-02T03:04:05.2Z", 1)
    assert [line.text for line in cursor.unshipped(fetched)] == ["err"]


def test_when_the_cursor_line_is_gone_lines_after_its_time_are_shipped() -> None:
    fetched = parse_log(raw(("2026-01-02T03:04:05.1Z", "old"), ("2026-01-02T03:04:05.9Z", "new")))
    cursor = Cursor("2026-01-02T03:04:05.5Z", 1)
    assert [line.text for line in cursor.unshipped(fetched)] == ["new"]


def test_the_state_file_round_trips_and_survives_a_missing_directory(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state = RunState.load(state_dir, "run-1")
    assert state.exit_code is None and state.cursor.stamp == ""
    state.shipped = Cursor("2026-01-02T03:04:05.2Z", 1)
    state.exit_code, state.reason = 137, "OOM-killed"
    state.save()  # creates the directory
    again = RunState.load(state_dir, "run-1")
    assert (again.cursor.stamp, again.cursor.count, again.exit_code, again.reason) == (
        "2026-01-02T03:04:05.2Z",
        1,
        137,
        "OOM-killed",
    )
    again.remove()
    assert not (state_dir / "run-1.json").exists()


def test_only_output_the_api_acknowledged_counts_as_shipped_in_the_state_file(tmp_path: Path) -> None:
    state = RunState.load(tmp_path, "run-1")
    state.cursor = Cursor("2026-01-02T03:04:09Z", 4)  # queued, the API has not answered yet
    state.save()
    assert RunState.load(tmp_path, "run-1").cursor == Cursor()  # a restart ships them again
    state.acknowledge(Cursor("2026-01-02T03:04:09Z", 4))
    again = RunState.load(tmp_path, "run-1")
    assert (again.cursor, again.shipped) == (Cursor("2026-01-02T03:04:09Z", 4), Cursor("2026-01-02T03:04:09Z", 4))


def test_an_acknowledgement_after_the_record_was_removed_does_not_bring_its_file_back(tmp_path: Path) -> None:
    state = RunState.load(tmp_path, "run-1")
    state.save()
    state.remove()
    state.acknowledge(Cursor("2026-01-02T03:04:09Z", 1))
    assert not (tmp_path / "run-1.json").exists()
