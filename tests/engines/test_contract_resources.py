"""The contract's volumes, networks, prunes and container details, on both engines.

Volumes, networks and images are made with the docker SDK (tests.support.docker_objects),
labelled with a fresh spectr.test value, and removed at the end with the containers using them;
prunes are narrowed to that label (other tests share the engine).
"""

from __future__ import annotations

from dataclasses import asdict

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


def _sleeper(image, name, **fields):
    return ContainerSpec(image=image, name=name, command=["sleep", "infinity"], **fields)


def test_inspect_and_list_carry_mounts_networks_and_command(engine, image, container_names, made):
    volume, network = made.volume("data"), made.network("net")
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


def test_volumes_listed_removed_and_refused_while_mounted(engine, image, container_names, made):
    used, spare = made.volume("used"), made.volume("spare")
    holder = container_names("holder")
    engine.create_container(_sleeper(image, holder, volumes=[VolumeMount(used, "/data")]))
    listed = {v.name: v for v in engine.list_volumes()}
    assert listed[used].labels == made.labels and listed[used].driver == "local"
    assert listed[used].size is not None and listed[used].mountpoint and listed[used].created
    with pytest.raises(Conflict):
        engine.remove_volume(used)
    engine.remove_volume(spare)
    assert spare not in {v.name for v in engine.list_volumes()}
    with pytest.raises(NotFound):
        engine.remove_volume(spare)


def test_volume_prune_takes_only_unused_ones_with_the_labels(engine, image, container_names, made):
    unused, mounted = made.volume("unused"), made.volume("mounted")
    engine.create_container(
        _sleeper(image, container_names("holder"), volumes=[VolumeMount(mounted, "/data")])
    )
    result = engine.prune_volumes(made.labels)
    assert result.deleted == [unused] and result.space_reclaimed >= 0
    assert mounted in {v.name for v in engine.list_volumes()}


def test_networks_listed_and_removal_refused_when_builtin_or_busy(
    engine, image, container_names, made
):
    network = made.network("busy")
    listed = {n.name: n for n in engine.list_networks()}
    assert listed[network].labels == made.labels and listed[network].driver == "bridge"
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


def test_image_prune_takes_dangling_images_with_the_labels(engine, image, container_names, made):
    source = container_names("source")
    engine.create_container(_sleeper(image, source))
    dangling = made.image(made.client.containers.get(source))
    assert not engine.inspect_image(dangling).tags
    result = engine.prune_images(made.labels)
    assert result.deleted == [dangling]
    with pytest.raises(NotFound):
        engine.inspect_image(dangling)


def test_stats_count_network_bytes(engine, image, container_names):
    name = container_names("net-stats")
    engine.create_container(_sleeper(image, name))
    stats = engine.container_stats(name)
    assert stats.network_rx_bytes is not None and stats.network_tx_bytes is not None


def test_both_engines_describe_the_same_objects_alike(agent, pki, image, container_names, made):
    volume, network = made.volume("same"), made.network("same")
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
