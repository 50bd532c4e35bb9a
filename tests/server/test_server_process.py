"""`agent server start` as a real process: it serves the API and stops cleanly on SIGTERM."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from agent_core.client import APIClient
from agent_core.server.serve import open_store, start_in_thread


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_hello(url, proc, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            if requests.get(f"{url}/api/hello", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            # Not listening yet, or (on a loaded machine) too slow to answer the first call.
            pass
        time.sleep(0.1)
    raise AssertionError(f"no answer from {url} within {timeout} s")


@pytest.fixture
def server_process(tmp_path):
    """`agent server start` in its own process on a free port and a fresh SQLite file."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT")}
    env["AGENT_HOME"] = str(tmp_path / "home")
    db = f"sqlite:///{tmp_path / 'server.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent_core.cli.main", "server", "start", "--port", str(port), "--db", db],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_hello(url, proc)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_the_server_process_serves_the_api(server_process):
    _, url = server_process
    client = APIClient(url, retries=0)

    flow = client.register_flow("etl", "echo etl")
    run = client.create_flow_run(flow_id=flow["id"])

    assert client.get_flow_run(run["id"])["state"]["type"] == "Scheduled"
    client.close()


def test_the_server_process_exits_0_on_sigterm(server_process):
    proc, url = server_process
    client = APIClient(url, retries=0)
    client.create_flow_run(flow_id=client.register_flow("etl", "echo etl")["id"])
    client.close()

    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)

    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert f"Serving the agent API on {url}" in out


def test_the_data_outlives_the_server_process(tmp_path, server_process):
    proc, url = server_process
    client = APIClient(url, retries=0)
    run = client.create_flow_run(flow_id=client.register_flow("etl", "echo etl")["id"])
    client.close()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)

    reopened = APIClient.embedded_api(f"sqlite:///{tmp_path / 'server.db'}")

    assert reopened.get_flow_run(run["id"])["id"] == run["id"]
    reopened.store.engine.dispose()
    reopened.close()


def test_stopping_a_server_whose_loop_already_saw_the_stop_is_clean(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'api.db'}")
    running = start_in_thread(store, "127.0.0.1", 0)
    # The interleaving that happens under load: the loop wakes between stop()'s two steps.
    running.stopping.set()
    running.thread.join(10)

    try:
        running.stop()
    finally:
        store.engine.dispose()
