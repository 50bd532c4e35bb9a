"""Meta-tests that keep the hooks honest: each is documented in its spec and in docs/, and tested."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from agent_core import hookspecs
from tests.core.conftest import hook_specs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(hook_specs())


def test_the_hookspecs_module_has_the_hooks_of_the_design() -> None:
    assert set(HOOKS) >= {
        "deploy_flow",
        "heartbeat",
        "on_startup",
        "on_shutdown",
        "run_config_schema",
        "settings_schema",
        "preflight",
        "check_deployment",
        "cancel_deployment",
        "list_deployments",
        "deployment_logs",
    }


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_spec_says_who_calls_it_and_on_which_thread(hook: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""

    assert re.search(r"\bcalled\b", doc, re.IGNORECASE), f"{hook}: the docstring does not say who calls it"
    assert "thread" in doc, f"{hook}: the docstring does not say on which thread"


FIRSTRESULT_HOOKS = [name for name, opts in sorted(hook_specs().items()) if opts.get("firstresult")]


@pytest.mark.parametrize("hook", FIRSTRESULT_HOOKS)
def test_every_firstresult_hook_spec_says_what_its_return_value_means(hook: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""

    returns = doc.partition(":return:")[2]
    assert returns, f"{hook}: no ':return:' line"
    assert "None" in returns, f"{hook}: the ':return:' line does not say what None means"


def test_every_hook_is_named_in_a_test_file() -> None:
    sources = "\n".join(
        path.read_text() for path in (ROOT / "tests").rglob("test_*.py") if path.resolve() != Path(__file__).resolve()
    )

    untested = [hook for hook in HOOKS if not re.search(rf"\b{hook}\b", sources)]

    assert untested == [], f"hooks no test names: {untested}"


def test_every_hook_has_a_heading_in_docs_hooks_md() -> None:
    """docs/hooks.md documents each hook under a ``## name`` or ``### name`` heading."""
    path = ROOT / "docs" / "hooks.md"
    assert path.is_file(), "docs/hooks.md is missing: every hook needs a documentation heading there"
    text = path.read_text()

    undocumented = [hook for hook in HOOKS if not re.search(rf"^#{{2,3}}\s+`?{hook}\b", text, re.MULTILINE)]

    assert undocumented == [], f"hooks without a heading in docs/hooks.md: {undocumented}"
