"""HTML building blocks: escaping in one place, the page layout, small formatting helpers."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import urlencode

STATE_CLASSES = {
    "Scheduled": "scheduled",
    "Submitted": "submitted",
    "Running": "running",
    "Success": "success",
    "Failed": "failed",
    "Cancelling": "cancelling",
    "Cancelled": "cancelled",
}


NAV = (("runs", "/", "Runs"), ("agents", "/ui/agents", "Agents"), ("flows", "/ui/flows", "Flows"))


def h(value: Any) -> str:
    """Escape for HTML text and attribute values. Everything from the store goes through this."""
    return html.escape("" if value is None else str(value), quote=True)


def query(**params: Any) -> str:
    kept = {k: v for k, v in params.items() if v not in (None, "", [])}
    return ("?" + urlencode(kept, doseq=True)) if kept else ""


def when(iso: str | None) -> str:
    """A ``<time>`` element: UTC text on the server, turned into local time by the script."""
    if not iso:
        return "-"
    shown = iso.replace("T", " ")[:19] + " UTC"
    return f'<time datetime="{h(iso)}">{h(shown)}</time>'


def state_badge(state: str) -> str:
    return f'<span class="state {STATE_CLASSES.get(state, "unknown")}">{h(state)}</span>'


def first_line(message: str | None, width: int = 80) -> str:
    return (message or "").splitlines()[0][:width] if message else ""


def page(title: str, body: str, *, active: str = "", who: str = "", csrf: str = "", logged_in: bool = False) -> str:
    nav = "".join(
        f'<a href="{href}"{" class=active" if name == active else ""}>{label}</a>' for name, href, label in NAV
    )
    account = ""
    if logged_in:
        account = (
            f'<form method="post" action="/ui/logout" class="inline">'
            f'<input type="hidden" name="csrf" value="{h(csrf)}">'
            f'<button type="submit">Log out</button></form>'
        )
    elif who:
        account = '<a href="/ui/login">Log in with a key</a>'
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{h(title)} · agent</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/ui/static/style.css">
<script src="/ui/static/app.js" defer></script>
</head>
<body>
<header>
<span class="brand">agent</span>
<nav>{nav}</nav>
<span class="who">{h(who)}</span>
{account}
</header>
<main>
{body}
</main>
</body>
</html>
"""
