"""Image pulls: the policy, one pull at a time per image, credentials.

No registry can be reached from the test machines, so these tests give ``ensure_image`` a
stand-in for the SDK's ``images`` API that records when each pull runs. Everything else about
images (present, absent with policy ``never``) is tested against the real engine in
``test_backend.py`` and ``test_docker_conformance.py``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import docker.errors
import pytest

from agent_core.errors import DeploymentError
from agent_plugin_docker.images import ensure_image
from agent_plugin_docker.schemas import DockerSettingsSchema

PULL_SECONDS = 0.3


@dataclass
class FakeImages:
    present: set[str] = field(default_factory=set)
    pulls: list[tuple[str, str, float, float, Any]] = field(default_factory=list)
    fail: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, image: str) -> object:
        if image not in self.present:
            raise docker.errors.ImageNotFound(f"No such image: {image}")
        return object()

    def pull(self, repository: str, tag: str, auth_config: Any = None) -> object:
        started = time.monotonic()
        time.sleep(PULL_SECONDS)
        if self.fail:
            raise docker.errors.APIError(self.fail, explanation=self.fail)
        with self._lock:
            self.pulls.append((repository, tag, started, time.monotonic(), auth_config))
            self.present.add(f"{repository}:{tag}")
        return object()


@dataclass
class FakeClient:
    images: FakeImages = field(default_factory=FakeImages)


class FakeAgent:
    def __init__(self, **settings: Any) -> None:
        self.backend_settings = DockerSettingsSchema().load(settings)
        self._state: dict[str, Any] = {}

    def plugin_state(self, name: str) -> dict[str, Any]:
        return self._state


def deploy_all(agent: FakeAgent, client: FakeClient, images: list[str], policy: str) -> list[BaseException]:
    errors: list[BaseException] = []

    def one(image: str) -> None:
        try:
            ensure_image(agent, client, image, policy, lambda line: None)  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(image,)) for image in images]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return errors


def test_concurrent_deploys_of_a_missing_image_pull_it_once_and_other_images_are_not_held_up() -> None:
    agent, client = FakeAgent(), FakeClient()
    errors = deploy_all(agent, client, ["repo/a:1"] * 4 + ["repo/b:2"], "if-not-present")
    assert errors == []
    pulled = {repo: (start, end) for repo, _, start, end, _ in client.images.pulls}
    assert [p[0] for p in client.images.pulls].count("repo/a") == 1
    # b was pulled while a was being pulled, not after it.
    assert pulled["repo/b"][0] < pulled["repo/a"][1]


def test_always_pulls_but_waiters_reuse_a_pull_that_finished_while_they_waited() -> None:
    agent, client = FakeAgent(), FakeClient(FakeImages(present={"repo/a:1"}))
    assert deploy_all(agent, client, ["repo/a:1"] * 3, "always") == []
    assert len(client.images.pulls) == 1
    assert deploy_all(agent, client, ["repo/a:1"], "always") == []
    assert len(client.images.pulls) == 2  # a later deploy pulls again


def test_a_present_image_is_not_pulled_and_never_refuses_a_missing_one() -> None:
    agent, client = FakeAgent(), FakeClient(FakeImages(present={"repo/a:1"}))
    assert deploy_all(agent, client, ["repo/a:1"], "if-not-present") == []
    assert deploy_all(agent, client, ["repo/a:1"], "never") == []
    [error] = deploy_all(agent, client, ["repo/b:1"], "never")
    assert isinstance(error, DeploymentError)
    assert "pull policy is 'never'" in str(error)
    assert client.images.pulls == []


def test_a_failed_pull_names_the_image_and_the_engine_reason() -> None:
    agent, client = FakeAgent(), FakeClient(FakeImages(fail="manifest unknown"))
    [error] = deploy_all(agent, client, ["repo/a:1"], "if-not-present")
    assert str(error) == "cannot pull image 'repo/a:1': manifest unknown"


@pytest.mark.parametrize(
    ("registry", "image", "sent"),
    [
        ("", "repo/a:1", True),
        ("registry.example:5000", "registry.example:5000/team/a:1", True),
        ("registry.example:5000", "repo/a:1", False),
    ],
)
def test_registry_credentials_go_only_to_their_registry(registry: str, image: str, sent: bool) -> None:
    agent = FakeAgent(registry=registry, registry_username="me", registry_password="s3cret")
    client = FakeClient()
    assert deploy_all(agent, client, [image], "if-not-present") == []
    [(_, _, _, _, auth)] = client.images.pulls
    if sent:
        assert auth["username"] == "me" and auth["password"] == "s3cret"
    else:
        assert auth is None
