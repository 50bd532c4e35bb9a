"""The agent's AWS clients (ECS, EC2, CloudWatch Logs, STS, S3) and how AWS errors read.

One boto3 session per agent, from the ``region``, ``profile`` and ``endpoint_url`` settings and
boto3's usual credential chain (environment, profile, instance role); credentials are never
read or printed here. Every client uses botocore's *adaptive* retry mode (client-side rate
limiting once AWS throttles) unless ``AWS_RETRY_MODE`` says otherwise, and enough pooled
connections for every deploy thread.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from agent_core.errors import DeploymentError
from agent_plugin_ecs.schemas import EcsSettings

# Raised by botocore when AWS cannot be reached at all (as opposed to an error answer).
UNREACHABLE = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
)
NO_CREDENTIALS = (
    botocore.exceptions.NoCredentialsError,
    botocore.exceptions.PartialCredentialsError,
    botocore.exceptions.ProfileNotFound,
)
THROTTLING = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"})
SERVICES = ("ecs", "ec2", "logs", "sts", "s3")


class AwsUnavailable(DeploymentError):
    """AWS did not answer (network, endpoint), or no credentials could be found."""


def error_code(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def explain(exc: BaseException) -> str:
    """AWS's own words for an error, without botocore's "An error occurred (X) when calling..." prefix."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code.isdigit():
            # Not an AWS error answer (a proxy's or a stand-in's page): the status says enough.
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", code)
            return f"HTTP {status} from {exc.operation_name} (no AWS error in the answer)"
        message = error.get("Message") or str(exc)
        return f"{code}: {message}" if code and code not in message else str(message)
    if isinstance(exc, NO_CREDENTIALS):
        return (
            f"{exc}: give the agent AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "a profile with --set profile=NAME, or an instance or task role)"
        )
    return str(exc) or exc.__class__.__name__


def retry_config() -> dict[str, Any]:
    """The retries botocore should use: adaptive, unless the user chose with AWS_RETRY_MODE."""
    if os.environ.get("AWS_RETRY_MODE"):
        return {}
    # Only the mode: AWS_MAX_ATTEMPTS and the profile's max_attempts still apply.
    return {"retries": {"mode": "adaptive"}}


class AwsClients:
    """The clients of one agent, made on first use and shared by its threads (boto3 clients are thread-safe)."""

    def __init__(self, settings: EcsSettings, pool_size: int = 10) -> None:
        self.settings = settings
        self.pool_size = pool_size
        self._lock = threading.Lock()
        self._session: boto3.session.Session | None = None
        self._clients: dict[str, Any] = {}
        #: called with (service, operation name) before every request: counts calls in tests and the bench
        self.observers: list[Any] = []

    @property
    def region(self) -> str | None:
        with self._lock:
            return self._get_session().region_name

    def _get_session(self) -> boto3.session.Session:
        if self._session is None:
            try:
                self._session = boto3.session.Session(
                    profile_name=self.settings.profile or None, region_name=self.settings.region or None
                )
            except botocore.exceptions.ProfileNotFound as exc:
                raise AwsUnavailable(f"{exc}: fix the profile setting or the AWS config file") from None
        return self._session

    def client(self, service: str) -> Any:
        found = self._clients.get(service)
        if found is not None:
            return found
        with self._lock:
            if service not in self._clients:
                session = self._get_session()
                config = botocore.config.Config(max_pool_connections=self.pool_size, **retry_config())
                try:
                    made = session.client(service, endpoint_url=self.settings.endpoint_url or None, config=config)
                except botocore.exceptions.NoRegionError:
                    raise AwsUnavailable(
                        "no AWS region: set the region setting (--set region=eu-west-1) or AWS_REGION"
                    ) from None
                made.meta.events.register("before-call.*.*", self._notify)
                self._clients[service] = made
            return self._clients[service]

    def use(self, service: str, client: Any) -> None:
        """Use ``client`` for ``service`` (a client wrapped in botocore's Stubber, in tests)."""
        client.meta.events.register("before-call.*.*", self._notify)
        with self._lock:
            self._clients[service] = client

    def _notify(self, model: Any, **kwargs: Any) -> None:
        service = model.service_model.endpoint_prefix
        for observer in list(self.observers):
            observer(service, model.name)

    @property
    def ecs(self) -> Any:
        return self.client("ecs")

    @property
    def ec2(self) -> Any:
        return self.client("ec2")

    @property
    def logs(self) -> Any:
        return self.client("logs")

    @property
    def sts(self) -> Any:
        return self.client("sts")

    @property
    def s3(self) -> Any:
        return self.client("s3")

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, {}
        for made in clients.values():
            close = getattr(made, "close", None)
            if close is not None:
                close()
