"""Checking request arguments against botocore's model of the ECS API, without calling AWS.

botocore validates parameters only when a call is made; checking templates and run configs
against the same model up front turns a misspelt key into a message naming it, before any
AWS call (and at start-up for the agent's templates).
"""

from __future__ import annotations

import functools
from typing import Any

import botocore.session
from botocore.model import ServiceModel
from botocore.validate import ParamValidator


@functools.cache
def ecs_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("ecs")


def shape_problems(shape_name: str, params: dict[str, Any], *, allow_missing: bool = True) -> list[str]:
    """botocore's complaints about ``params`` for the input shape ``shape_name``, one per line.

    :param allow_missing: ignore missing required members (a template is completed later).
    """
    report = ParamValidator().validate(params, ecs_model().shape_for(shape_name))
    if not report.has_errors():
        return []
    lines = [line.strip() for line in report.generate_report().splitlines() if line.strip()]
    if allow_missing:
        lines = [line for line in lines if not line.startswith("Missing required parameter")]
    return lines
