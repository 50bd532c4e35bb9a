"""Reading task-definition and run-task templates: a local JSON or YAML file, or an ``s3://`` object."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import botocore.exceptions
import yaml

from agent_core.errors import DeploymentError
from agent_plugin_ecs.aws import UNREACHABLE, AwsClients, explain
from agent_plugin_ecs.schemas import definition_problems, run_task_problems


class TemplateError(DeploymentError):
    """A template cannot be read, or is not what it should be; the message names the file."""


def read_text(location: str, clients: AwsClients) -> str:
    if location.startswith("s3://"):
        bucket, _, key = location.removeprefix("s3://").partition("/")
        if not bucket or not key:
            raise TemplateError(f"{location}: an S3 location is s3://BUCKET/KEY")
        try:
            body = clients.s3.get_object(Bucket=bucket, Key=key)["Body"]
            try:
                return body.read().decode("utf-8")
            finally:
                body.close()
        except botocore.exceptions.ClientError as exc:
            raise TemplateError(f"cannot read {location}: {explain(exc)}") from None
        except (*UNREACHABLE, botocore.exceptions.BotoCoreError) as exc:
            raise TemplateError(f"cannot read {location}: {explain(exc)}") from None
        except UnicodeDecodeError:
            raise TemplateError(f"{location} is not UTF-8 text") from None
    path = Path(location).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(f"{path} does not exist") from None
    except OSError as exc:
        raise TemplateError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise TemplateError(f"{path} is not UTF-8 text") from None


def parse(text: str, location: str) -> dict[str, Any]:
    """The mapping in ``text``: JSON for ``.json`` names, YAML (a superset) otherwise."""
    try:
        data = json.loads(text) if location.lower().endswith(".json") else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise TemplateError(f"{location} is not valid JSON: {exc}") from None
    except yaml.YAMLError as exc:
        raise TemplateError(f"{location} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TemplateError(f"{location} must hold a mapping (an object), not a {type(data).__name__}")
    return data


def load_task_definition(location: str, clients: AwsClients) -> dict[str, Any]:
    data = parse(read_text(location, clients), location)
    problems = definition_problems(data)
    if problems:
        raise TemplateError(f"{location} is not a valid task definition: {'; '.join(problems)}")
    return data


def load_run_task(location: str, clients: AwsClients) -> dict[str, Any]:
    data = parse(read_text(location, clients), location)
    problems = run_task_problems(data)
    if problems:
        raise TemplateError(f"{location} is not valid run_task arguments: {'; '.join(problems)}")
    return data
