"""The contract's volumes, networks, prunes and container details, on both engines.

Objects are made with the docker SDK, labelled with a fresh spectr.test value, and removed at
the end; prunes are narrowed to that label (other tests share the engine).
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import asdict

import docker
import pytest

from portal.engines import (
    AgentEngine,
    Conflict,
    ContainerSpec,
    LocalDockerEngine,
    NotFound,
    RestartPolicy,
    RetryPolicy,
    VolumeMount,
)
from portal.engines.resilience import CircuitBreaker

pytestmark = [pytest.mark.slow, pytest.mark.docker]


class Labelled:
    """Volumes, networks and images of one test, labelled spectr.test=<run>."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client, self.run = client, f"contract-{uuid.uuid4().hex[:8]}"
        self.labels = {"spectr.test": self.run}
        self.volumes: list[str] = []
        self.networks: list[str] = []
        self.images: list[str] = []

    def volume(self, purpose: str) -> str:
        self.volumes.append(f"spectr-test-{self.run}-{purpose}")
        self.client.volumes.create(self.volumes[-1], labels=self.labels)
        return self.volumes[-1]

    def network(self, purpose: str) -> str:
        self.networks.append(f"spectr-test-{self.run}-{purpose}")
        self.client.networks.create(self.networks[-1], labels=self.labels)
        return self.networks[-1]

    def dangling_image(self, container_name: str) -> str:
        container = self.client.containers.get(container_name)
        image = container.commit(changes=[f"LABEL spectr.test={self.run}"])
        self.images.append(image.id)
        return image.id

    def clean(self) -> None:
        # Containers that mount our volumes or sit on our networks are ours too: they go first.
        users = [("volume", name) for name in self.volumes] + [
            ("network", name) for name in self.networks
        ]
        for kind, name in users:
            for container in self.client.containers.list(all=True, filters={kind: name}):
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
def labelled(docker_client):
    objects = Labelled(docker_client)
    yield objects
    objects.clean()


def _sleeper(image, name, **fields):
    return ContainerSpec(image=image, name=name, command=["sleep", "infinity"], **fields)


def test_inspect_and_list_carry_mounts_networks_and_command(
    engine, image, container_names, labelled
):
    volume, network = labelled.volume("data"), labelled.network("net")
    name = container_names("details")
    spec = _sleeper(image, name, env={"K": "v"}, volumes=[VolumeMount(volume, "/data", True)],
                    network=network, restart_policy=RestartPolicy("on-failure", 2))  # fmt: skip
    info = engine.create_container(spec)
    assert info.command == ["sleep", "infinity"] and "K=v" in info.env
    assert info.restart_policy == "on-failure" and info.entrypoint is None
    [mount] = info.mounts
    assert (mount.type, mount.name, mount.destination, mount.read_only) == (
        "volume", volume, "/data", True)  # fmt: skip
    [attachment] = info.networks
    assert attachment.name == network and attachment.network_id and attachment.ip_address
    [listed] = [c for c in engine.list_containers() if c.name == name]
    assert listed.mounts == info.mounts and listed.networks == info.networks


def test_volumes_listed_removed_and_refused_while_mounted(engine, image, container_names, labelled):
    used, spare = labelled.volume("used"), labelled.volume("spare")
    holder = container_names("holder")
    engine.create_container(_sleeper(image, holder, volumes=[VolumeMount(used, "/data")]))
    listed = {v.name: v for v in engine.list_volumes()}
    assert listed[used].labels == labelled.labels and listed[used].driver == "local"
    assert listed[used].size is not None and listed[used].mountpoint and listed[used].created
    with pytest.raises(Conflict):
        engine.remove_volume(used)
    engine.remove_volume(spare)
    assert spare not in {v.name for v in engine.list_volumes()}
    with pytest.raises(NotFound):
        engine.remove_volume(spare)


def test_volume_prune_takes_only_unused_ones_with_the_labels(
    engine, image, container_names, labelled
):
    unused, mounted = labelled.volume("unused"), labelled.volume("mounted")
    engine.create_container(
        _sleeper(image, container_names("holder"), volumes=[VolumeMount(mounted, "/data")])
    )
    result = engine.prune_volumes(labelled.labels)
    assert result.deleted == [unused] and result.space_reclaimed >= 0
    assert mounted in {v.name for v in engine.list_volumes()}


def test_networks_listed_and_removal_refused_when_builtin_or_busy(
    engine, image, container_names, labelled
):
    network = labelled.network("busy")
    listed = {n.name: n for n in engine.list_networks()}
    assert listed[network].labels == labelled.labels and listed[network].driver == "bridge"
    assert listed[network].subnets and listed["bridge"].builtin and not listed[network].builtin
    holder = container_names("on-net")
    engine.create_container(_sleeper(image, holder, network=network))
    with pytest.raises(Conflict):
        engine.remove_network(network)  # running containers on it
    with pytest.raises(Conflict):
        engine.remove_network("bridge")
    engine.remove_container(holder, force=True)
    engine.remove_network(listed[network].id)
    with pytest.raises(NotFound):
        engine.remove_network(network)


def test_image_prune_takes_dangling_images_with_the_labels(
    engine, image, container_names, labelled
):
    source = container_names("source")
    engine.create_container(_sleeper(image, source))
    dangling = labelled.dangling_image(source)
    assert not engine.inspect_image(dangling).tags
    result = engine.prune_images(labelled.labels)
    assert result.deleted == [dangling]
    with pytest.raises(NotFound):
        engine.inspect_image(dangling)


def test_stats_count_network_bytes(engine, image, container_names):
    name = container_names("net-stats")
    engine.create_container(_sleeper(image, name))
    stats = engine.container_stats(name)
    assert stats.network_rx_bytes is not None and stats.network_tx_bytes is not None


def test_both_engines_describe_the_same_objects_alike(agent, pki, image, container_names, labelled):
    volume, network = labelled.volume("same"), labelled.network("same")
    name = container_names("same")
    local = LocalDockerEngine()
    remote = AgentEngine(agent.url, agent.token, pki.ca.cert_path,
                         retry=RetryPolicy(attempts=2), breaker=CircuitBreaker())  # fmt: skip
    try:
        local.create_container(_sleeper(image, name, env={"A": "1"}, network=network,
                                        volumes=[VolumeMount(volume, "/v")]))  # fmt: skip
        assert asdict(local.inspect_container(name)) == asdict(remote.inspect_container(name))
        listed = [
            [asdict(c) for c in engine.list_containers(labels=None) if c.name == name]
            for engine in (local, remote)
        ]
        assert listed[0] == listed[1] and listed[0]
        volumes = [
            [asdict(v) for v in e.list_volumes() if v.name == volume] for e in (local, remote)
        ]
        assert volumes[0] == volumes[1] and volumes[0]
        networks = [[asdict(n) for n in e.list_networks() if n.name == network]
                    for e in (local, remote)]  # fmt: skip
        assert networks[0] == networks[1] and networks[0]
    finally:
        local.close()
        remote.close()
