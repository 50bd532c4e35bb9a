"""The operator's registry allow-list on the ecs backend (the docker backend's control, where it applies).

Every container image of the definition a run would use must come from ``allowed_registries``;
a refused one fails the run before anything is registered or started (checked on the AWS calls
the agent made, and on the task runtime: no task). Pull policies and bare volume paths are the
docker engine's and have no ECS counterpart (see docs/backends/ecs.md). How an image names its
registry and how entries match are core's rule, tested in tests/core/test_images.py.
"""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from agent_core.errors import DeploymentError
from agent_core.testing.harness import wait_for_final
from agent_plugin_ecs.images import check_definition
from agent_plugin_ecs.schemas import EcsSettingsSchema
from tests.plugins.ecs.conftest import IMAGE
from tests.plugins.ecs.helpers import CallCounter, create_run, plugin_state
from tests.plugins.ecs.runtime import TaskRuntime

ALLOWED = ["public.ecr.aws/docker"]


def test_a_sidecar_from_elsewhere_is_refused_too_naming_its_container_registry_and_the_list() -> None:
    definition = {"containerDefinitions": [{"name": "flow", "image": IMAGE}, {"name": "proxy", "image": "evil.io/p"}]}
    with pytest.raises(DeploymentError) as info:
        check_definition(definition, ALLOWED, "the run's task definition")

    assert str(info.value) == (
        "image 'evil.io/p' (container 'proxy' of the run's task definition) is from registry 'evil.io', "
        "which this agent does not allow (allowed_registries: public.ecr.aws/docker); "
        "nothing was registered or started"
    )
    check_definition(definition, [], "x")  # no list: anything goes


def test_a_default_image_the_allow_list_refuses_is_a_start_up_error() -> None:
    with pytest.raises(ValidationError) as info:
        EcsSettingsSchema().load({"image": "evil.io/etl:1", "allowed_registries": "registry.example.com"})
    assert "the default image 'evil.io/etl:1' is not from one of the allowed_registries" in str(info.value)
    with pytest.raises(ValidationError) as info:
        EcsSettingsSchema().load({"allowed_registries": "not a registry"})
    assert "write host[:port] or host[:port]/path" in str(info.value)


@pytest.mark.parametrize(
    "run_config",
    [
        {"type": "ecs", "image": "evil.io/etl:1"},
        {
            "type": "ecs",
            "task_definition": {
                "containerDefinitions": [
                    {"name": "flow", "memoryReservation": 64},
                    {"name": "sidecar", "image": "evil.io/proxy:1", "memoryReservation": 64, "essential": False},
                ]
            },
        },
    ],
    ids=["run-config-image", "sidecar-of-its-own-definition"],
)
def test_an_image_from_a_registry_not_allowed_fails_the_run_before_any_registration_or_task(
    client, start_agent, runtime: TaskRuntime, run_config: dict
) -> None:
    agent = start_agent(backend={"allowed_registries": ALLOWED})
    calls = CallCounter(plugin_state(agent.agent))
    run = create_run(client, "echo never", run_config)
    final = wait_for_final(client, run["id"], 30)
    agent.stop()

    assert final["state"]["type"] == "Failed"
    assert "from registry 'evil.io', which this agent does not allow" in final["state"]["message"]
    assert "allowed_registries: public.ecr.aws/docker" in final["state"]["message"]
    assert calls.count("RegisterTaskDefinition") == 0 and calls.count("RunTask") == 0
    assert runtime.started == []


def test_control_an_allowed_image_runs(client, start_agent, runtime: TaskRuntime) -> None:
    run = create_run(client, "echo allowed", {"type": "ecs", "image": IMAGE})
    agent = start_agent(backend={"allowed_registries": ALLOWED})
    final = wait_for_final(client, run["id"], 30)
    agent.stop()

    assert final["state"]["type"] == "Success", final["state"]
    assert len(runtime.started) == 1


def test_an_existing_definition_with_an_image_from_elsewhere_is_described_but_never_started(
    client, start_agent, runtime: TaskRuntime, ecs
) -> None:
    registered = ecs.register_task_definition(
        family="agent-test-foreign",
        containerDefinitions=[{"name": "flow", "image": "evil.io/etl:1", "memory": 64}],
    )["taskDefinition"]["taskDefinitionArn"]
    agent = start_agent(backend={"allowed_registries": ALLOWED})
    calls = CallCounter(plugin_state(agent.agent))
    run = create_run(client, "echo never", {"type": "ecs", "task_definition_arn": registered})
    final = wait_for_final(client, run["id"], 30)
    agent.stop()

    assert final["state"]["type"] == "Failed"
    assert f"container 'flow' of task definition {registered}" in final["state"]["message"]
    assert calls.count("RunTask") == 0 and runtime.started == []
    ecs.deregister_task_definition(taskDefinition=registered)
