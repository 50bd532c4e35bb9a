"""A database URL that cannot be used is one clear line naming it with its password masked,
never a traceback, from ``agent --db URL ...`` and ``agent server start --db URL``; the
password of a URL never reaches a log line of the server either."""

import logging
import os
import subprocess
import sys

import pytest

from agent_core.server.logs import MaskPasswords
from agent_core.server.serve import open_store

SECRET = "hunter2-secret"

BAD_URLS = [
    (f"postgresql://agent:{SECRET}@127.0.0.1:99999/agent", "port 99999"),
    (f"postgresql://agent:{SECRET}@127.0.0.1:abc/agent", "port is not a number"),
    (f"postgresql://agent:{SECRET}@127.0.0.1:1/agent", "Connection refused"),
    (f"mysql://agent:{SECRET}@127.0.0.1/agent", "unsupported database"),
]


def agent(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT")}
    env["AGENT_HOME"] = str(tmp_path / "home")
    return subprocess.run(
        [sys.executable, "-m", "agent_core.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(("url", "reason"), BAD_URLS, ids=[r for _, r in BAD_URLS])
@pytest.mark.parametrize("command", [("flows", "list"), ("server", "start", "--port", "0")], ids=["embedded", "server"])
def test_a_bad_database_url_is_one_clear_line_with_the_password_masked(tmp_path, url, reason, command):
    args = [*command, "--db", url] if command[0] == "server" else ["--db", url, *command]

    done = agent(tmp_path, *args)

    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Traceback" not in output
    assert reason in output
    assert SECRET not in output
    assert "agent:***@127.0.0.1" in output


def test_opening_a_database_that_refuses_names_it_masked():
    with pytest.raises(Exception, match=r"agent:\*\*\*@127\.0\.0\.1:1/agent") as caught:
        open_store(f"postgresql://agent:{SECRET}@127.0.0.1:1/agent")

    assert SECRET not in str(caught.value)


def test_log_lines_and_tracebacks_show_no_url_password(caplog):
    logger = logging.getLogger("agent_core.server.test")
    caplog.handler.addFilter(MaskPasswords())
    try:
        raise RuntimeError(f"could not reach postgresql://agent:{SECRET}@db/agent")
    except RuntimeError:
        logger.exception("connecting to %s failed", f"postgresql://agent:{SECRET}@db/agent")

    text = caplog.text
    assert SECRET not in text
    assert "postgresql://agent:***@db/agent" in text
    assert "RuntimeError" in text
