"""The network of Fargate tasks when none is configured: the default VPC, as the seed's ECS agent did.

Its subnets (the default subnet of each availability zone, else all), its ``default`` security
group and a public IP, so that a task can pull public images and reach the API. Nothing is
inferred on EC2, or when subnets are configured (in the settings or a template).
"""

from __future__ import annotations

from dataclasses import dataclass

import botocore.exceptions

from agent_core.errors import DeploymentError
from agent_plugin_ecs.aws import NO_CREDENTIALS, UNREACHABLE, AwsClients, AwsUnavailable, explain


class NoDefaultVpc(DeploymentError):
    """Fargate without subnets, and the account has no default VPC in the region."""


@dataclass(frozen=True)
class DefaultNetwork:
    vpc_id: str
    subnets: list[str]
    security_groups: list[str]

    def awsvpc(self) -> dict[str, object]:
        return {"subnets": self.subnets, "securityGroups": self.security_groups, "assignPublicIp": "ENABLED"}

    def describe(self) -> str:
        groups = ", ".join(self.security_groups) or "none"
        return f"default VPC {self.vpc_id}: subnets {', '.join(self.subnets)}, security group(s) {groups}, public IP"


def infer_default_network(clients: AwsClients) -> DefaultNetwork:
    """The default VPC's subnets and security group.

    :raise NoDefaultVpc: there is none (or it has no subnets): the message says what to set.
    :raise AwsUnavailable: EC2 could not be asked.
    """
    ec2 = clients.ec2
    try:
        vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
        if not vpcs:
            raise NoDefaultVpc(
                f"Fargate tasks need subnets and the account has no default VPC in {clients.region or 'this region'}: "
                "set subnets (--set subnets=subnet-a,subnet-b) and security_groups, or a networkConfiguration "
                "in the run_task_template"
            )
        vpc_id = vpcs[0]["VpcId"]
        subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
        groups = ec2.describe_security_groups(
            Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": ["default"]}]
        )["SecurityGroups"]
    except botocore.exceptions.ClientError as exc:
        raise AwsUnavailable(f"cannot look up the default VPC: {explain(exc)}") from None
    except (*UNREACHABLE, *NO_CREDENTIALS) as exc:
        raise AwsUnavailable(f"cannot look up the default VPC: {explain(exc)}") from None
    if not subnets:
        raise NoDefaultVpc(f"the default VPC {vpc_id} has no subnets: set subnets (--set subnets=subnet-a,subnet-b)")
    preferred = [s for s in subnets if s.get("DefaultForAz")] or subnets
    return DefaultNetwork(
        vpc_id=vpc_id,
        subnets=sorted(s["SubnetId"] for s in preferred),
        security_groups=[g["GroupId"] for g in groups],
    )
