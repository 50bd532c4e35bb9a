"""Reading an agent's health endpoints (``--agent-address``) the way a prober would: over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def health(address: str, path: str = "/api/health") -> tuple[int, dict[str, Any]]:
    """``(status, JSON body)`` of ``GET address+path``; a 503 is an answer, not an error."""
    try:
        with urllib.request.urlopen(f"{address}{path}", timeout=5) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)
