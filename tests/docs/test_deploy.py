"""The files in ``deploy/`` are right: units systemd accepts, manifests with the agent's probes,
stop timeouts longer than the drain, and command lines the ``agent`` command accepts."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agent_core.cli.main import main
from agent_core.config import DEFAULTS
from tests.fixtures.services import require_service

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service")) + sorted((DEPLOY / "systemd").glob("*.timer"))
DRAIN = DEFAULTS["agent"]["drain_timeout"]
LONG_POLL = 30  # the API's max_wait_seconds (CONTRACTS.md 2)


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "systemd" / name)
    return parser


def accepted(args: list[str], capsys) -> None:
    """The agent command parses these arguments (every option exists); --help stops before acting."""
    code = main([*args, "--help"])
    _, err = capsys.readouterr()
    assert code == 0, f"agent {shlex.join(args)}: {err}"


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_systemd_accepts_the_unit(path, tmp_path):
    if shutil.which("systemd-analyze") is None:
        require_service("systemd-analyze", "apt-get install systemd")
    text = path.read_text().replace("/opt/agent/venv/bin/agent", str(Path(sys.executable).with_name("agent")))
    copy = tmp_path / path.name
    copy.write_text(text)
    if path.suffix == ".timer":
        (tmp_path / path.with_suffix(".service").name).write_text(
            (path.with_suffix(".service")).read_text().replace("/opt/agent/venv/bin/agent", sys.executable)
        )

    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, check=False)

    problems = [line for line in (result.stdout + result.stderr).splitlines() if path.stem in line or "Failed" in line]
    assert result.returncode == 0, result.stderr
    assert problems == []


def test_the_agents_unit_stops_with_sigterm_after_the_drain():
    service = unit("agent.service")["Service"]

    assert service["KillSignal"] == "SIGTERM"
    assert float(service["TimeoutStopSec"]) > DRAIN
    assert service["KillMode"] == "process"  # local workloads outlive a restart


@pytest.mark.parametrize("name", [p.name for p in UNITS if p.suffix == ".service"])
def test_each_units_command_line_is_one_the_agent_accepts(name, capsys):
    command = shlex.split(unit(name)["Service"]["ExecStart"])

    assert Path(command[0]).name == "agent"
    accepted(command[1:], capsys)


def manifests() -> dict[str, list[dict]]:
    return {p.name: list(yaml.safe_load_all(p.read_text())) for p in sorted((DEPLOY / "kubernetes").glob("*.yaml"))}


def containers(document: dict) -> list[dict]:
    spec = document["spec"]
    if document["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]["containers"]


def test_the_agents_pod_probes_the_live_and_ready_endpoints_on_its_health_port():
    (deployment,) = manifests()["agent.yaml"]
    (container,) = containers(deployment)
    args = container["args"]
    address = args[args.index("--agent-address") + 1]
    port = {p["name"]: p["containerPort"] for p in container["ports"]}

    assert container["livenessProbe"]["httpGet"]["path"] == "/api/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/health/ready"
    for probe in ("livenessProbe", "readinessProbe"):
        assert port[container[probe]["httpGet"]["port"]] == int(address.rsplit(":", 1)[1])
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > DRAIN


def test_the_agents_pod_announces_its_metrics_on_its_health_port():
    (deployment,) = manifests()["agent.yaml"]
    (container,) = containers(deployment)
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    port = {p["name"]: p["containerPort"] for p in container["ports"]}

    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == port["health"]


def test_every_manifests_command_line_is_one_the_agent_accepts(capsys):
    for documents in manifests().values():
        for document in documents:
            if document["kind"] in ("Deployment", "CronJob"):
                for container in containers(document):
                    accepted(container["args"], capsys)


def test_the_server_and_agent_talk_through_the_service():
    server, service = manifests()["server.yaml"]
    (agent,) = manifests()["agent.yaml"]
    env = {e["name"]: e.get("value") for e in containers(agent)[0]["env"]}

    assert env["AGENT__API__URL"] == f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    assert service["spec"]["selector"] == server["spec"]["template"]["metadata"]["labels"]


def test_the_dockerfile_stops_with_sigterm_and_runs_the_agent_command(capsys):
    text = (DEPLOY / "Dockerfile").read_text()
    instructions = dict(re.findall(r"^(STOPSIGNAL|ENTRYPOINT|CMD) (.+)$", text, re.M))

    assert instructions["STOPSIGNAL"] == "SIGTERM"
    assert json.loads(instructions["ENTRYPOINT"]) == ["agent"]
    accepted(json.loads(instructions["CMD"]), capsys)
    for copied in re.findall(r"^COPY (\S+) ", text, re.M):
        assert (ROOT / copied).exists(), copied


def test_the_proxy_waits_longer_than_a_long_poll():
    text = (DEPLOY / "nginx" / "agent.conf").read_text()

    (timeout,) = re.findall(r"proxy_read_timeout (\d+)s;", text)
    assert int(timeout) > LONG_POLL
    assert "proxy_pass http://127.0.0.1:4200;" in text
