"""Run directories: ``<work_dir>/<run id>-<attempt>/``, one per attempt, with the workload's files.

``spec.json`` (what was launched), ``pid`` (the supervisor, also the process group),
``output.log`` (stdout and stderr), ``shipped`` (how much of the log the API acknowledged),
``exit_code`` (written by the supervisor when the workload ends).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_core.config import agent_home


def work_dir(agent: Any) -> Path:
    """Where the agent's run directories live (``[backends.local] work_dir``)."""
    configured = agent.backend_settings.get("work_dir")
    return Path(configured).expanduser() if configured else agent_home() / "local-runs"


def run_dirs(directory: Path) -> list[RunDir]:
    """The run directories under ``directory`` (named ``<run id>-<attempt>``), oldest name first."""
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.iterdir()):
        if path.is_dir() and path.name.rpartition("-")[2].isdigit():
            found.append(RunDir(path))
    return found


@dataclass(frozen=True)
class RunDir:
    path: Path

    @classmethod
    def of(cls, work_dir: Path, run_id: str, attempt: int) -> RunDir:
        return cls(work_dir / f"{run_id}-{attempt}")

    @property
    def key(self) -> str:
        return self.path.name

    @property
    def run_id(self) -> str:
        return self.path.name.rsplit("-", 1)[0]

    @property
    def attempt(self) -> int:
        return int(self.path.name.rsplit("-", 1)[1])

    @property
    def output(self) -> Path:
        return self.path / "output.log"

    def create(self) -> bool:
        """Make the directory; False if it exists (this attempt was launched before)."""
        try:
            self.path.mkdir(parents=True)
        except FileExistsError:
            return False
        return True

    def write_spec(self, spec: dict[str, Any]) -> None:
        (self.path / "spec.json").write_text(json.dumps(spec))

    def spec(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / "spec.json").read_text())
        except (OSError, ValueError):
            return {}

    def write_pid(self, pid: int) -> None:
        (self.path / "pid").write_text(str(pid))

    def pid(self) -> int | None:
        try:
            return int((self.path / "pid").read_text())
        except (OSError, ValueError):
            return None

    def exit_code(self) -> int | None:
        try:
            return int((self.path / "exit_code").read_text())
        except (OSError, ValueError):
            return None

    def shipped(self) -> int:
        try:
            return int((self.path / "shipped").read_text())
        except (OSError, ValueError):
            return 0

    def set_shipped(self, offset: int) -> None:
        tmp = self.path / "shipped.tmp"
        tmp.write_text(str(offset))
        os.replace(tmp, self.path / "shipped")

    def new_output(
        self, start: int | None = None, limit: int = 1 << 20, *, final: bool = False
    ) -> tuple[list[str], int]:
        """Complete lines written from ``start`` (default: the shipped offset) on, and the offset
        after them; with ``final``, a last unfinished line too."""
        if start is None:
            start = self.shipped()
        try:
            with self.output.open("rb") as f:
                f.seek(start)
                data = f.read(limit)
        except OSError:
            return [], start
        end = data.rfind(b"\n")
        if final and data and end < len(data) - 1 and len(data) < limit:
            end = len(data) - 1
        if end < 0:
            # A single line longer than the limit is shipped in pieces rather than never.
            if len(data) >= limit:
                return [data.decode(errors="replace")], start + len(data)
            return [], start
        chunk = data[: end + 1]
        lines = chunk.decode(errors="replace").splitlines()
        return lines, start + len(chunk)

    def tail(self, count: int) -> list[str]:
        try:
            with self.output.open("rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 64 * 1024))
                data = f.read()
        except OSError:
            return []
        return data.decode(errors="replace").splitlines()[-count:]
