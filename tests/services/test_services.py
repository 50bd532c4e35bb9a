"""Smoke tests: each test-service fixture gives a service that really works."""

from __future__ import annotations

import boto3
import docker
import pytest
import sqlalchemy as sa

from tests.fixtures.services import aws_env


def test_postgres_url_is_a_fresh_database_that_accepts_tables(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            tables = sa.inspect(conn).get_table_names()
            assert tables == []
            conn.execute(sa.text("CREATE TABLE item (id integer PRIMARY KEY, name text)"))
            conn.execute(sa.text("INSERT INTO item VALUES (1, 'one')"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT name FROM item")).scalar_one() == "one"
    finally:
        engine.dispose()


def test_busybox_image_runs_a_shell_command_without_network(
    docker_engine: docker.DockerClient,
    busybox_image: str,
) -> None:
    command = ["sh", "-c", "echo hello"]
    output = docker_engine.containers.run(busybox_image, command, network_mode="none", remove=True)
    assert output == b"hello\n"


def test_python_image_runs_the_host_interpreter(
    docker_engine: docker.DockerClient,
    python_image: str,
) -> None:
    command = ["python3", "-c", "print(2+3)"]
    output = docker_engine.containers.run(python_image, command, network_mode="none", remove=True)
    assert output == b"5\n"


def test_moto_server_answers_ecs_calls(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in aws_env(moto_server).items():
        monkeypatch.setenv(name, value)
    ecs = boto3.client("ecs")
    ecs.create_cluster(clusterName="smoke")
    # One moto server serves the session: the ECS tests' clusters may be listed too.
    assert "smoke" in [arn.rsplit("/", 1)[-1] for arn in ecs.list_clusters()["clusterArns"]]
