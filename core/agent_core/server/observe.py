"""Falcon middleware that records every answered request: the metrics and the access log.

The access log (logger ``agent_core.server.access``) has one line per request: method, route
template (``/api/flow-runs/{id}``, so ids and query strings stay out), status, duration in
milliseconds, the caller's tenant and address. It never holds a key or a body.
"""

from __future__ import annotations

import logging
import time

import falcon

from agent_core.server.metrics import ServerMetrics

access_log = logging.getLogger("agent_core.server.access")

UNMATCHED = "(unmatched)"


class RequestObserver:
    def __init__(self, metrics: ServerMetrics, *, log_access: bool) -> None:
        self.metrics = metrics
        self.log_access = log_access

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        started = req.context.get("started")
        seconds = time.perf_counter() - started if started is not None else 0.0
        # Unknown paths share one label, so that probing them cannot grow the metrics.
        route = req.uri_template if resource is not None and req.uri_template else UNMATCHED
        status = resp.status_code
        self.metrics.observe(req.method, route, status, seconds)
        if self.log_access:
            access_log.info(
                "%s %s %d %.1fms tenant=%s client=%s",
                req.method,
                route,
                status,
                seconds * 1000,
                req.context.get("tenant", "-"),
                req.remote_addr or "-",
            )
