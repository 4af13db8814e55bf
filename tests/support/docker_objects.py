"""Docker objects a test makes on the shared engine, labelled spectr.test=<run>, and removed
afterwards whatever happened: containers, volumes, networks, committed images.

Register the fixture in a conftest.py (`from tests.support.docker_objects import made`)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from agent.tests.harness import base_image

SLEEP = ["sleep", "infinity"]


class Made:
    """Docker objects one test made, all labelled spectr.test=<run>; removed at the end."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.run = f"res-{uuid.uuid4().hex[:8]}"
        self.labels = {"spectr.test": self.run}
        self.containers: list[Any] = []
        self.volumes: list[str] = []
        self.networks: list[str] = []
        self.images: list[str] = []

    def name(self, purpose: str) -> str:
        return f"spectr-test-{self.run}-{purpose}"

    def container(self, purpose: str, command: list[str] = SLEEP, **options: Any) -> Any:
        labels = {**self.labels, **options.pop("labels", {})}
        container = self.client.containers.run(
            options.pop("image", base_image()), command, name=self.name(purpose),
            labels=labels, detach=True, **options,
        )  # fmt: skip
        self.containers.append(container)
        return container

    def volume(self, purpose: str, **labels: str) -> str:
        name = self.name(purpose)
        self.client.volumes.create(name, labels={**self.labels, **labels})
        self.volumes.append(name)
        return name

    def network(self, purpose: str) -> str:
        name = self.name(purpose)
        self.client.networks.create(name, labels=self.labels)
        self.networks.append(name)
        return name

    def image(self, container: Any, repository: str | None = None) -> str:
        """An image committed from a container (untagged: a dangling one), with our label."""
        change = f"LABEL spectr.test={self.run}"
        image = container.commit(repository=repository, tag="1" if repository else None,
                                 changes=[change])  # fmt: skip
        self.images.append(image.id)
        return image.id

    def clean(self) -> None:
        # Containers made elsewhere (through an engine under test) that mount our volumes or sit
        # on our networks are the test's too: they go first, or the volumes could not.
        users = [("volume", name) for name in self.volumes]
        users += [("network", name) for name in self.networks]
        for kind, name in users:
            self.containers += self.client.containers.list(all=True, filters={kind: name})
        for container in self.containers:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        for image in self.images:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.images.remove(image, force=True)
        for name in self.volumes:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.volumes.get(name).remove(force=True)
        for name in self.networks:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.networks.get(name).remove()


@pytest.fixture
def made() -> Iterator[Made]:
    client = docker.from_env()
    objects = Made(client)
    try:
        yield objects
    finally:
        objects.clean()
        client.close()
