"""The conformance kit catches what users notice: each deliberately broken backend fails the kit
with a message naming its defect, and the same checks pass the unbroken backend.

Each case runs the kit's tests in a pytest of its own (``tests/kit/suites.py``) and reads the
outcome and message of each test from its JUnit XML report.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITES = Path(__file__).with_name("suites.py")

CANCEL = "test_cancel_stops_the_workload_on_the_platform"
OUTPUT = "test_output_written_by_the_workload_reaches_the_run_logs"
CANCEL_OUTPUT = "test_output_written_while_cancelling_reaches_the_run_logs"
DOUBLE = "test_a_second_deploy_of_the_same_attempt_starts_no_second_workload"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


def run_kit(suite: str, tests: list[str], tmp_path: Path) -> dict[str, tuple[str, str]]:
    """``{test: (outcome, message)}`` for the kit's ``tests`` in ``suite``."""
    report = tmp_path / f"{suite}.xml"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *(f"{SUITES}::{suite}::{test}" for test in tests),
            "-p",
            "no:randomly",
            f"--junitxml={report}",
            "-q",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=360,
        check=False,
    )
    assert report.exists(), result.stdout + result.stderr
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        outcome = "passed" if failure is None else failure.tag
        outcomes[case.get("name", "")] = (outcome, "" if failure is None else failure.get("message", ""))
    assert set(outcomes) == set(tests), result.stdout + result.stderr
    return outcomes


def test_the_unbroken_backend_passes_the_checks_the_broken_ones_fail(tmp_path: Path) -> None:
    outcomes = run_kit("TestLocalLike", [CANCEL, OUTPUT, CANCEL_OUTPUT, DOUBLE], tmp_path)

    assert {test: outcome for test, (outcome, _) in outcomes.items()} == dict.fromkeys(outcomes, "passed"), outcomes


def test_a_cancel_that_stops_nothing_fails_the_kit_naming_it(tmp_path: Path) -> None:
    (outcome, message) = run_kit("TestCancelStopsNothing", [CANCEL], tmp_path)[CANCEL]

    assert outcome == "failure"
    assert "cancel stops nothing" in message
    assert "the platform still runs" in message


def test_a_backend_that_ships_no_output_fails_the_kit_naming_it(tmp_path: Path) -> None:
    outcomes = run_kit("TestNoOutputShipping", [OUTPUT, CANCEL_OUTPUT], tmp_path)

    assert outcomes[OUTPUT][0] == "failure"
    assert "output not shipped: the workload printed" in outcomes[OUTPUT][1]
    assert outcomes[CANCEL_OUTPUT][0] == "failure"
    assert "output not shipped while the workload runs" in outcomes[CANCEL_OUTPUT][1]


def test_a_double_launch_fails_the_kit_naming_it(tmp_path: Path) -> None:
    (outcome, message) = run_kit("TestDoubleLaunch", [DOUBLE], tmp_path)[DOUBLE]

    assert outcome == "failure"
    assert "double launch: a second deploy_flow for the same attempt started another workload" in message
    assert "(2 workloads for run" in message
