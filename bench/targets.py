"""Issue 9's targets as the benches print them: each figure beside its floor and the ratio to it.

A bench builds :class:`Target` rows, prints them with :func:`print_targets` and keeps
``Target.to_dict()`` in its JSON file (``targets``), which ``bench/run_all.py`` gathers into one
table at the end of a run.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from agent_core.client import APIClient


def hello_round_trips(url: str, samples: int) -> list[float]:
    """The latency floor: ``samples`` loopback ``GET /api/hello`` round trips, in ms (one warm-up first)."""
    client = APIClient(url, retries=0)
    client.hello()
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        client.hello()
        times.append((time.perf_counter() - started) * 1000)
    client.close()
    return times


@dataclass
class Target:
    measure: str
    value: float | None
    unit: str
    target: float | None  # None: printed for comparison only
    kind: str  # "max": the value must not exceed the target; "min": it must reach it
    floor: float | None = None
    floor_text: str = ""
    ratio: float | None = None
    ratio_text: str = "x floor"
    extra: str = ""

    @classmethod
    def latency(cls, measure: str, value_ms: float, target_ms: float | None, floor_ms: float) -> Target:
        """A latency in ms against the loopback ``GET /api/hello`` floor (ratio: value / floor)."""
        return cls(
            measure,
            value_ms,
            "ms",
            target_ms,
            "max",
            floor=floor_ms,
            floor_text=f"hello p50 {floor_ms:.2f} ms",
            ratio=value_ms / floor_ms if floor_ms else None,
        )

    @property
    def ok(self) -> bool | None:
        if self.target is None or self.value is None:
            return None
        return self.value <= self.target if self.kind == "max" else self.value >= self.target

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


def _cell(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return f"{text} {unit}"


def rows(targets: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    out = []
    for t in targets:
        sign = "<=" if t["kind"] == "max" else ">="
        goal = f"{sign} {_cell(t['target'], t['unit'])}" if t["target"] is not None else "-"
        ratio = f"{t['ratio']:.1f} {t['ratio_text']}" if t.get("ratio") is not None else "-"
        verdict = {True: "ok", False: "MISSED", None: ""}[t.get("ok")]
        measure = t["measure"] + (f" [{t['extra']}]" if t.get("extra") else "")
        out.append((measure, _cell(t["value"], t["unit"]), goal, t.get("floor_text") or "-", ratio, verdict))
    return out


def print_table(targets: list[dict[str, Any]]) -> None:
    header = ("measure", "measured", "target", "floor (same run)", "ratio", "")
    body = rows(targets)
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *body]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def print_targets(targets: list[Target]) -> None:
    print_table([t.to_dict() for t in targets])
