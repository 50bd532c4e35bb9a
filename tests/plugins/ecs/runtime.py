"""A container runtime for moto's ECS: what AWS does with a task, and moto does not.

moto keeps tasks as records: nothing runs, no output reaches CloudWatch, and a task's status
advances each time it is described. :class:`TaskRuntime` plays the part of the Fargate hosts
for the tests: it holds moto's tasks in RUNNING (through moto's state manager), runs each new
task's flow container command for real as a local process with the environment of its
container overrides, writes the process's output into the log stream the task definition
names (``<prefix>/<container>/<task id>``, as the awslogs driver does), and stops the task
with ``stop_task`` when the process exits, as ECS does when an essential container exits. A
task stopped through the API (a cancel) has its process terminated.

What it cannot show is moto's too: exit codes are always 0 (those are tested with botocore's
Stubber and AWS's documented answers).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
from typing import Any

import boto3

MODEL = "ecs::task"
# Far more describes than any test makes: moto then never advances a task by itself.
HOLD = {"progression": "manual", "times": 10**9}
ESSENTIAL_EXITED = "Essential container in task exited"


def set_transition(endpoint: str, transition: dict[str, Any] | None) -> None:
    """Configure (or, with None, restore) how moto advances ECS tasks."""
    if transition is None:
        path, body = "unset-transition", {"model_name": MODEL}
    else:
        path, body = "set-transition", {"model_name": MODEL, "transition": transition}
    request = urllib.request.Request(
        f"{endpoint}/moto-api/state-manager/{path}", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def reset_moto(endpoint: str) -> None:
    """Forget everything moto holds (its state-manager settings stay)."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


class TaskRuntime:
    def __init__(self, endpoint: str, cluster: str, container: str = "flow", poll: float = 0.1) -> None:
        self.endpoint = endpoint
        self.cluster = cluster
        self.container = container
        self.poll = poll
        self.ecs = boto3.client("ecs", endpoint_url=endpoint)
        self.logs = boto3.client("logs", endpoint_url=endpoint)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.started: list[str] = []  # task ARNs, in the order their containers started
        self.environments: dict[str, dict[str, str]] = {}
        self._writers: dict[str, threading.Thread] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="task-runtime", daemon=True)
        self.errors: list[str] = []

    def __enter__(self) -> TaskRuntime:
        set_transition(self.endpoint, HOLD)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        for writer in self._writers.values():
            writer.join(5)
        set_transition(self.endpoint, None)

    # --- the loop ------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._round()
            except Exception as exc:  # moto reset under us, or the cluster gone: keep going
                self.errors.append(repr(exc))
            self._stop.wait(self.poll)

    def _round(self) -> None:
        arns = self.ecs.list_tasks(cluster=self.cluster).get("taskArns") or []
        watch = [arn for arn in arns if arn not in self.processes or self.processes[arn].poll() is None]
        if not watch:
            return
        for start in range(0, len(watch), 100):
            for task in self.ecs.describe_tasks(cluster=self.cluster, tasks=watch[start : start + 100])["tasks"]:
                arn = task["taskArn"]
                proc = self.processes.get(arn)
                if proc is None and task["lastStatus"] == "RUNNING":
                    self._start(task)
                elif proc is not None and task["lastStatus"] == "STOPPED" and proc.poll() is None:
                    proc.terminate()  # stopped through the API: SIGTERM, as ECS sends

    def _start(self, task: dict[str, Any]) -> None:
        arn = task["taskArn"]
        definition = self.ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
        container = next(
            (c for c in definition["containerDefinitions"] if c["name"] == self.container),
            definition["containerDefinitions"][0],
        )
        override = next(
            (
                o
                for o in (task.get("overrides") or {}).get("containerOverrides") or []
                if o.get("name") == container["name"]
            ),
            {},
        )
        command = override.get("command") or container.get("command") or ["/bin/true"]
        env = {"PATH": os.environ.get("PATH", os.defpath)}
        env.update({e["name"]: e["value"] for e in container.get("environment") or []})
        env.update({e["name"]: e["value"] for e in override.get("environment") or []})
        self.environments[arn] = env
        proc = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self.processes[arn] = proc
        self.started.append(arn)
        options = (container.get("logConfiguration") or {}).get("options") or {}
        stream = None
        if options.get("awslogs-group"):
            stream = (
                options["awslogs-group"],
                f"{options.get('awslogs-stream-prefix', '')}/{container['name']}/{arn.rsplit('/', 1)[-1]}",
            )
        writer = threading.Thread(target=self._run, args=(arn, proc, stream), name=f"container-{arn[-8:]}", daemon=True)
        self._writers[arn] = writer
        writer.start()

    def _run(self, arn: str, proc: subprocess.Popen[bytes], stream: tuple[str, str] | None) -> None:
        """Ship the process's lines as the awslogs driver would, then stop the task as ECS would."""
        if stream is not None:
            try:
                self.logs.create_log_stream(logGroupName=stream[0], logStreamName=stream[1])
            except Exception as exc:
                self.errors.append(f"create_log_stream: {exc!r}")
                stream = None
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            if stream is None:
                continue
            try:
                self.logs.put_log_events(
                    logGroupName=stream[0],
                    logStreamName=stream[1],
                    logEvents=[
                        {"timestamp": int(time.time() * 1000), "message": raw.decode(errors="replace").rstrip("\n")}
                    ],
                )
            except Exception as exc:
                self.errors.append(f"put_log_events: {exc!r}")
        proc.wait()
        try:
            self.ecs.stop_task(cluster=self.cluster, task=arn, reason=ESSENTIAL_EXITED)
        except Exception as exc:
            self.errors.append(f"stop_task: {exc!r}")

    # --- what tests ask ------------------------------------------------------------------------

    def wait_started(self, count: int = 1, timeout: float = 20) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.started) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.started) >= count, f"{len(self.started)} task(s) started, expected {count}: {self.errors}"
        return list(self.started)

    def kill_all(self) -> None:
        """The hosts vanish: every process killed (its task left as moto holds it)."""
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.kill()
