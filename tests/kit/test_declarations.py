"""Capabilities are declared explicitly: nothing skips silently, and what is skipped is reported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from agent_core.models import Deployment
from agent_core.testing.conformance import CAPABILITIES, BackendConformance, declaration_problems

ROOT = Path(__file__).resolve().parents[2]
SUITES = Path(__file__).with_name("suites.py")


class Undeclared(BackendConformance):
    backend = "local"


class ClaimsSome(BackendConformance):
    backend = "local"
    capabilities = frozenset({"output"})
    not_claimed: ClassVar[dict[str, str]] = {"exit_codes": "no exit codes here"}


class ClaimsCancelWithoutProbe(BackendConformance):
    backend = "local"
    capabilities = frozenset({"cancel"})
    not_claimed: ClassVar[dict[str, str]] = {c: "not here" for c in CAPABILITIES if c != "cancel"}


class Complete(BackendConformance):
    backend = "local"
    capabilities = frozenset({"cancel", "output"})
    not_claimed: ClassVar[dict[str, str]] = {c: "not here" for c in CAPABILITIES if c not in ("cancel", "output")}

    def workload_alive(self, deployment: Deployment, backend_settings: dict[str, Any]) -> bool:
        return False


def test_a_class_declaring_no_capabilities_is_told_to_declare_them() -> None:
    (problem,) = declaration_problems(Undeclared)

    assert "declare capabilities = frozenset({...}) and not_claimed = {capability: reason}" in problem


def test_a_capability_neither_claimed_nor_declined_is_a_problem_not_a_skip() -> None:
    (problem,) = declaration_problems(ClaimsSome)

    assert "are neither claimed nor in not_claimed (with the reason)" in problem
    assert "'cancel'" in problem and "'exit_codes'" not in problem.partition("neither")[0]


def test_a_claimed_capability_needs_its_platform_probe() -> None:
    assert declaration_problems(ClaimsCancelWithoutProbe) == [
        "capability 'cancel' needs the platform probe workload_alive() of the test class"
    ]


def test_a_complete_declaration_has_no_problem() -> None:
    assert declaration_problems(Complete) == []


def kit_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args, "-p", "no:randomly", "-q"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_a_capability_not_claimed_is_skipped_with_its_reason_and_listed_at_the_end() -> None:
    result = kit_run(f"{SUITES}::TestDeclinesMissing::test_a_workload_that_vanishes_marks_the_run_failed")

    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.partition("agent conformance: capabilities not tested")[2]
    assert "'missing' not claimed by backend 'local': this platform keeps every workload forever (1 test)" in summary
