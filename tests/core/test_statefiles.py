"""A backend's record files (``agent_core.statefiles``): written whole, read back or as none."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_core.statefiles import read_record, write_record


def test_a_record_reads_back_what_was_written_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "run-1.json"
    write_record(path, {"cursor": {"count": 2}, "exit_code": None})
    write_record(path, {"cursor": {"count": 3}, "exit_code": 0})

    assert read_record(path) == {"cursor": {"count": 3}, "exit_code": 0}
    assert [p.name for p in tmp_path.iterdir()] == ["run-1.json"]


def test_a_removed_state_directory_is_made_again_rather_than_losing_the_record(tmp_path: Path) -> None:
    path = tmp_path / "gone" / "run-1.json"
    write_record(path, {"exit_code": 1})
    assert read_record(path) == {"exit_code": 1}


@pytest.mark.parametrize("content", [None, "{torn", "[1, 2]", ""])
def test_a_missing_torn_or_foreign_record_reads_as_none(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "run-1.json"
    if content is not None:
        path.write_text(content)
    assert read_record(path) is None
