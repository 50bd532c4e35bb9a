"""Core never imports a backend's SDK: importing every agent_core module leaves docker and boto3 out."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

FORBIDDEN = ("docker", "boto3", "botocore")

SCRIPT = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    import agent_core

    imported = []
    for info in pkgutil.walk_packages(agent_core.__path__, "agent_core."):
        importlib.import_module(info.name)
        imported.append(info.name)
    forbidden = {forbidden!r}
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
    print(json.dumps({{"imported": imported, "loaded": loaded}}))
    """
).format(forbidden=FORBIDDEN)


def test_importing_all_of_agent_core_does_not_import_a_backend_sdk() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "agent_core.engine.agent" in report["imported"]
    assert "agent_core.cli.main" in report["imported"]
    assert report["loaded"] == []


def test_the_engine_imports_neither_the_api_server_nor_sqlalchemy() -> None:
    script = (
        "import json, sys; import agent_core.engine.agent; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('agent_core.server', 'sqlalchemy')))))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
