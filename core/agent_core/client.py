"""``APIClient``: the only way the agent and the CLI talk to the orchestration API.

One ``requests.Session``; a timeout on every call; retries with backoff on connection errors
(for any call when the connection was never made, since nothing was sent) and on timeouts and
gateway errors for idempotent calls; every error answer turned into a typed error from
:mod:`agent_core.errors` that carries the server's message.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pendulum
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from agent_core import __version__
from agent_core.errors import APIUnavailable, BadAPIAnswer, error_for_status
from agent_core.masking import mask_passwords

if TYPE_CHECKING:
    from agent_core.server.storage import Store

log = logging.getLogger(__name__)

EMBEDDED_URL = "http://embedded.agent"
RETRY_STATUSES = frozenset({502, 503, 504})


def _never_connected(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return True
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, NewConnectionError | ConnectionRefusedError):
            return True
        cause = cause.__context__ or cause.__cause__ or getattr(cause, "reason", None)
        if isinstance(cause, str):
            return False
    return False


class APIClient:
    def __init__(
        self,
        url: str,
        key: str = "",
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
        pool_size: int = 10,
    ) -> None:
        """``pool_size``: connections kept open to the API; give at least the number of threads
        that call at once (the agent passes its thread count), or extra calls open and drop
        connections of their own."""
        self.url = url.rstrip("/")
        self.key = key
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self.session = session or requests.Session()
        self._own_session = session is None
        if session is None:
            self.set_pool_size(pool_size)
            _settle_environment(self.session, self.url)
        self._hello: dict[str, Any] | None = None
        # Set by an owner that stops (the agent): a retry pause ends at once and the call fails
        # instead of sleeping through a SIGTERM.
        self.stop_event: threading.Event | None = None
        self.session.headers["User-Agent"] = f"agent/{__version__}"
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"
        self.embedded = False
        # The store behind an embedded client, for the few commands that work on the
        # database itself (creating a key in another tenant); None over HTTP.
        self.store: Store | None = None

    @classmethod
    def embedded_api(cls, db_url: str, **kwargs: Any) -> APIClient:
        """A client whose requests go straight into an in-process API app on ``db_url``."""
        from agent_core.server.app import create_app
        from agent_core.server.serve import open_store
        from agent_core.wsgi_adapter import WSGIAdapter

        store = open_store(db_url)
        client = cls(EMBEDDED_URL, **kwargs)
        client.session.mount(EMBEDDED_URL, WSGIAdapter(create_app(store)))
        client.embedded = True
        client.store = store
        return client

    def set_pool_size(self, size: int) -> None:
        """Keep up to ``size`` connections open (the agent passes its thread count); a session
        given to the constructor, or the embedded API, is left as it is."""
        if not self._own_session or getattr(self, "embedded", False):
            return
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(1, size))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def set_agent_id(self, agent_id: str) -> None:
        self.session.headers["X-Agent-Id"] = agent_id

    def close(self) -> None:
        self.session.close()

    # --- transport ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotent: bool | None = None,
        timeout: float | None = None,
        expect: tuple[str, ...] = (),
    ) -> Any:
        """The decoded JSON object of a call; ``expect`` names the keys the answer must have.

        An answer that is not such an object is a :class:`BadAPIAnswer`.
        """
        idempotent = method in ("GET", "HEAD", "DELETE") if idempotent is None else idempotent
        url = f"{self.url}{path}"
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.session.request(method, url, json=json, params=params, timeout=timeout or self.timeout)
            except requests.RequestException as exc:
                retryable = idempotent or _never_connected(exc)
                if (
                    retryable
                    and attempt <= self.retries
                    and self._pause(attempt, f"{method} {path}: {exc.__class__.__name__}")
                ):
                    continue
                # Masked here: the message travels (health answers, run logs), not only to log lines.
                where = mask_passwords(self.url)
                raise APIUnavailable(f"cannot reach the API at {where}", mask_passwords(_short(exc))) from None
            if (
                response.status_code in RETRY_STATUSES
                and idempotent
                and attempt <= self.retries
                and self._pause(attempt, f"{method} {path}: HTTP {response.status_code}")
            ):
                continue
            return self._decode(response, f"{method} {path}", expect)

    def _pause(self, attempt: int, why: str) -> bool:
        """Wait before retry ``attempt``; False (no retry) once ``stop_event`` is set."""
        delay = min(self.backoff * 2 ** (attempt - 1), 8.0)
        stop = self.stop_event
        if stop is not None:
            if stop.is_set() or stop.wait(delay):
                log.debug("not retrying %s: stopping", why)
                return False
            return True
        log.debug("retrying %s in %.2fs", why, delay)
        self._sleep(delay)
        return True

    def _decode(self, response: requests.Response, call: str, expect: tuple[str, ...]) -> Any:
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        if response.status_code < 400:
            if not isinstance(body, dict):
                kind = response.headers.get("Content-Type", "no content type")
                sample = response.text.strip()[:120]
                raise BadAPIAnswer(
                    "Bad API answer",
                    f"{call} answered HTTP {response.status_code} with {kind}, not a JSON object"
                    + (f": {sample!r}" if sample else ""),
                )
            missing = [key for key in expect if key not in body]
            if missing:
                raise BadAPIAnswer("Bad API answer", f"{call} answered without {', '.join(missing)}")
            return body
        if isinstance(body, dict) and "error" in body:
            raise error_for_status(response.status_code, str(body["error"]), body.get("detail"))
        text = response.text.strip()[:200] or response.reason
        raise error_for_status(response.status_code, f"HTTP {response.status_code}", text)

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        cursor = None
        while True:
            page = self.request(
                "GET", path, params={**params, "cursor": cursor} if cursor else params, expect=("items",)
            )
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    # --- meta -----------------------------------------------------------------------------

    def hello(self) -> dict[str, Any]:
        self._hello = self.request("GET", "/api/hello")
        return self._hello

    @property
    def features(self) -> frozenset[str]:
        """What the server supports (``long_poll``, ``claim``, ``leases``, ``leave``), from
        ``hello()`` (called once if it was not yet); empty for a server older than these."""
        if self._hello is None:
            self.hello()
        assert self._hello is not None
        features = self._hello.get("features")
        return frozenset(str(f) for f in features) if isinstance(features, list) else frozenset()

    def auth_info(self) -> dict[str, Any]:
        return self.request("GET", "/api/auth")

    # --- flows ----------------------------------------------------------------------------

    def register_flow(
        self,
        name: str,
        command: str,
        *,
        labels: list[str] | None = None,
        run_config: dict[str, Any] | None = None,
        description: str = "",
    ) -> dict[str, Any]:
        body = {"name": name, "command": command, "labels": labels or [], "description": description}
        if run_config is not None:
            body["run_config"] = run_config
        # Registering the same definition twice changes nothing, so a retry is safe.
        return self.request("POST", "/api/flows", json=body, idempotent=True)

    def get_flow(self, id_or_name: str) -> dict[str, Any]:
        return self.request("GET", f"/api/flows/{id_or_name}")

    def list_flows(self, limit: int | None = None) -> list[dict[str, Any]]:
        return _take(self._pages("/api/flows", {"limit": 200}), limit)

    # --- flow runs ------------------------------------------------------------------------

    def create_flow_run(
        self,
        *,
        flow_id: str | None = None,
        flow_name: str | None = None,
        parameters: dict[str, Any] | None = None,
        labels: list[str] | None = None,
        run_config: dict[str, Any] | None = None,
        scheduled_start_time: pendulum.DateTime | str | None = None,
        idempotency_key: str | None = None,
        max_retries: int = 0,
        retry_delay_seconds: float = 0.0,
        name: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "parameters": parameters or {},
            "max_retries": max_retries,
            "retry_delay_seconds": retry_delay_seconds,
            # A key of our own makes the create safe to retry after a lost answer.
            "idempotency_key": idempotency_key or f"client-{uuid.uuid4()}",
        }
        for key, value in (
            ("flow_id", flow_id),
            ("flow_name", flow_name),
            ("labels", labels),
            ("run_config", run_config),
            ("name", name),
        ):
            if value is not None:
                body[key] = value
        if scheduled_start_time is not None:
            body["scheduled_start_time"] = str(scheduled_start_time)
        return self.request("POST", "/api/flow-runs", json=body, idempotent=True)

    def get_flow_run(self, run_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/flow-runs/{run_id}")

    def list_flow_runs(
        self,
        *,
        states: list[str] | None = None,
        flow: str | None = None,
        agent_id: str | None = None,
        label: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": min(limit or 200, 200)}
        if states:
            params["state"] = ",".join(states)
        for key, value in (("flow", flow), ("agent_id", agent_id), ("label", label)):
            if value:
                params[key] = value
        return _take(self._pages("/api/flow-runs", params), limit)

    def iter_flow_runs(self, *, states: list[str] | None = None) -> Iterator[dict[str, Any]]:
        """Every run of the tenant, newest first, a page at a time (stop early by not reading on)."""
        params: dict[str, Any] = {"limit": 200}
        if states:
            params["state"] = ",".join(states)
        return self._pages("/api/flow-runs", params)

    def prune_flow_runs(
        self, *, older_than_seconds: float, states: list[str] | None = None, dry_run: bool = False
    ) -> dict[str, Any]:
        """Delete finished runs (and their logs and state history) that ended that long ago (admin)."""
        body: dict[str, Any] = {"older_than_seconds": older_than_seconds, "dry_run": dry_run}
        if states:
            body["states"] = states
        return self.request("POST", "/api/flow-runs/prune", json=body, idempotent=True)

    def set_flow_run_state(
        self, run_id: str, *, version: int, state: str, message: str = "", deployment: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Compare-and-set; raises :class:`StateUpdateConflict` when ``version`` is stale.

        ``deployment``, with a change to Running, is recorded in the same request (a server
        with the ``state_deployment`` feature).
        """
        body: dict[str, Any] = {"version": version, "state": {"type": state, "message": message}}
        if deployment is not None:
            body["deployment"] = deployment
        return self.request("POST", f"/api/flow-runs/{run_id}/state", json=body)

    def set_deployment(self, run_id: str, deployment: dict[str, Any]) -> dict[str, Any]:
        return self.request(
            "POST", f"/api/flow-runs/{run_id}/deployment", json={"deployment": deployment}, idempotent=True
        )

    def cancel_flow_run(self, run_id: str, message: str = "") -> dict[str, Any]:
        return self.request("POST", f"/api/flow-runs/{run_id}/cancel", json={"message": message}, idempotent=True)

    def flow_run_states(self, run_id: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/api/flow-runs/{run_id}/states", expect=("items",))["items"]

    def get_queue(
        self,
        labels: list[str],
        before: pendulum.DateTime,
        limit: int = 100,
        *,
        wait_seconds: float | None = None,
        claim: bool = False,
    ) -> list[dict[str, Any]]:
        """Runs ready for ``labels`` up to ``before``.

        ``wait_seconds``: when none is ready, the server holds the call until one is or the wait
        ends (long poll; the read timeout grows by the wait). ``claim``: the server claims the
        runs due now for this client's agent (``set_agent_id``) and answers them Submitted; runs
        due later come back Scheduled. A claim is not retried after a lost answer: the runs may
        be claimed already, so read them back (``list_flow_runs(agent_id=...)``).
        """
        body: dict[str, Any] = {"labels": list(labels), "before": before.in_timezone("UTC").isoformat(), "limit": limit}
        if wait_seconds:
            body["wait_seconds"] = wait_seconds
        if claim:
            body["claim"] = True
        timeout = self.timeout + wait_seconds if wait_seconds else None
        answer = self.request("POST", "/api/queue", json=body, idempotent=not claim, timeout=timeout, expect=("items",))
        return answer["items"]

    # --- logs -----------------------------------------------------------------------------

    def write_logs(self, entries: list[dict[str, Any]]) -> None:
        # Batches stay under the server's limits (5000 entries, a couple of MB).
        batch: list[dict[str, Any]] = []
        size = 0
        for entry in entries:
            length = len(entry.get("message", "")) + 200
            if batch and (len(batch) >= 1000 or size + length > 1_000_000):
                self.request("POST", "/api/logs", json={"logs": batch})
                batch, size = [], 0
            batch.append(entry)
            size += length
        if batch:
            self.request("POST", "/api/logs", json={"logs": batch})

    def read_logs(self, run_id: str, cursor: str | None = None, limit: int = 1000) -> tuple[list[dict[str, Any]], str]:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        page = self.request("GET", f"/api/flow-runs/{run_id}/logs", params=params, expect=("items", "next_cursor"))
        return page["items"], page["next_cursor"]

    # --- agents ---------------------------------------------------------------------------

    def register_agent(
        self,
        *,
        name: str,
        backend: str,
        labels: list[str],
        agent_config_id: str | None = None,
        heartbeat_period: float | None = None,
    ) -> dict[str, Any]:
        """Register (or re-register) the agent; ``heartbeat_period`` lets the server size its lease."""
        body: dict[str, Any] = {"name": name, "backend": backend, "labels": labels}
        if agent_config_id:
            body["agent_config_id"] = agent_config_id
        if heartbeat_period is not None:
            body["heartbeat_period"] = heartbeat_period
        return self.request("POST", "/api/agents", json=body, expect=("id",))

    def agent_heartbeat(self, agent_id: str) -> dict[str, Any]:
        """Renew the agent's lease; the answer has ``cancelling`` (its runs asked to cancel) and,
        from servers with leases, ``lease_expired`` (its runs were recovered meanwhile)."""
        return self.request(
            "POST", f"/api/agents/{agent_id}/heartbeat", json={}, idempotent=True, expect=("cancelling",)
        )

    def leave_agent(self, agent_id: str) -> dict[str, Any]:
        """The agent exits cleanly: its undeployed runs go back to Scheduled at once."""
        return self.request("POST", f"/api/agents/{agent_id}/leave", json={}, idempotent=True)

    def list_agents(self) -> list[dict[str, Any]]:
        return self.request("GET", "/api/agents", expect=("items",))["items"]

    def create_agent_config(self, name: str, settings: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/api/agent-configs", json={"name": name, "settings": settings})

    def get_agent_config(self, config_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/agent-configs/{config_id}")

    # --- keys -----------------------------------------------------------------------------

    def create_key(self, role: str, name: str = "") -> dict[str, Any]:
        return self.request("POST", "/api/keys", json={"role": role, "name": name})

    def list_keys(self) -> list[dict[str, Any]]:
        return self.request("GET", "/api/keys", expect=("items",))["items"]

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        return self.request("DELETE", f"/api/keys/{key_id}")


def _take(items: Iterator[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    out = []
    for item in items:
        if limit is not None and len(out) >= limit:
            break
        out.append(item)
    return out


def _short(exc: BaseException) -> str:
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused (is the server running?)"
    if "timed out" in text.lower():
        return "timed out"
    return text[:300]


def client_from_config(config: Any) -> APIClient:
    """The client for the configured API, or the embedded one when no URL is set."""
    api = config.section("api")
    kwargs = {"timeout": api["timeout"], "retries": api["retries"]}
    if api["url"]:
        return APIClient(api["url"], api["key"], **kwargs)
    return APIClient.embedded_api(config.db_url, key=api["key"], **kwargs)


def _settle_environment(session: requests.Session, url: str) -> None:
    """Read the environment's proxy, CA bundle and netrc settings for ``url`` once, now.

    With ``trust_env`` requests reads them again for every request: it walks the whole
    environment twice (proxies, no_proxy) and looks for ``~/.netrc``, about 1.5 ms of CPU per
    call, which a busy agent pays several times per run. The same settings, fixed at creation.
    """
    settings = session.merge_environment_settings(url, {}, None, None, None)
    session.proxies.update(settings.get("proxies") or {})
    if settings.get("verify") is not None:
        session.verify = settings["verify"]
    if settings.get("cert") is not None:
        session.cert = settings["cert"]
    if session.auth is None and (netrc := requests.utils.get_netrc_auth(url)):
        session.auth = netrc
    session.trust_env = False
