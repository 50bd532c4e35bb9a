"""Global options accepted after the command: ``agent runs list --api URL`` as ``agent --api URL runs list``.

Click only accepts a group's options before its subcommand. People type them anywhere, so
before parsing, every root option found after a subcommand name is moved in front of it,
unless the command itself has an option of that name (``agent start --api``,
``agent server start --db``): the command's own option wins where it has one.
"""

from __future__ import annotations

from typing import Any


def _options(command: Any) -> dict[str, Any]:
    """Option name -> parameter, for every option (``--api``, ``-v``, ``--no-auth``) of ``command``."""
    out: dict[str, Any] = {}
    for param in getattr(command, "params", []):
        if getattr(param, "param_type_name", "") != "option":
            continue
        for name in [*param.opts, *getattr(param, "secondary_opts", [])]:
            out[name] = param
    return out


def _takes_value(param: Any, token: str) -> bool:
    if token.startswith("--") and "=" in token:
        return False
    return not (getattr(param, "is_flag", False) or getattr(param, "count", False))


def hoist_global_options(root: Any, argv: list[str]) -> list[str]:
    """``argv`` with the root's options that follow a subcommand moved before it.

    Tokens after ``--`` and the values of the commands' own options are left alone; an
    unknown option stays where it is, for click to report.
    """
    global_options = _options(root)
    lead: list[str] = []  # the root's options as given before the first subcommand
    moved: list[str] = []  # root options found further right
    tail: list[str] = []  # subcommand names, their options and arguments
    command = root
    own = global_options
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            tail.extend(argv[i:])
            break
        name = token.split("=", 1)[0] if token.startswith("--") else token
        if token.startswith("-") and len(token) > 1:
            if name in own:
                width = 2 if _takes_value(own[name], token) else 1
                (lead if command is root else tail).extend(argv[i : i + width])
                i += width
                continue
            if command is not root and name in global_options:
                width = 2 if _takes_value(global_options[name], token) else 1
                moved.extend(argv[i : i + width])
                i += width
                continue
            (lead if command is root else tail).append(token)
            i += 1
            continue
        subcommands = getattr(command, "commands", None)
        if subcommands and token in subcommands:
            command = subcommands[token]
            own = _options(command)
        tail.append(token)
        i += 1
    return [*lead, *moved, *tail]
