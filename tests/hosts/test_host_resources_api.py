"""A host's Docker resources through the portal's API, on the real engine of the Spectr node.

Each test makes its own containers, volumes, networks and images (labelled with a fresh
`spectr.test` value, from the locally built base image) and removes them afterwards; prunes are
narrowed to that label, since other tests and Molecule share the engine.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest

from agent.tests.harness import free_port
from portal.core.audit import AuditEvent
from portal.extensions import db
from portal.hosts.service import ensure_local_host
from tests.support.docker_objects import SLEEP, Made

pytestmark = [pytest.mark.slow, pytest.mark.docker]


@pytest.fixture
def host_path(app: Any) -> str:
    return f"/api/v1/hosts/{ensure_local_host().id}"


def audits(action: str) -> list[AuditEvent]:
    return list(db.session.query(AuditEvent).filter_by(action=action).order_by(AuditEvent.id))


def test_containers_are_listed_with_filters(api_as: Callable, made: Made, host_path: str) -> None:
    plain = made.container("plain")
    managed = made.container("managed", labels={"spectr.managed-by": "spectr.core"})
    stopped = made.container("stopped", command=["true"])
    stopped.wait(timeout=30)
    viewer = api_as("viewer")

    listed = viewer.get(f"{host_path}/containers?q={made.run}").get_json()
    assert [c["name"] for c in listed] == sorted([plain.name, managed.name, stopped.name])
    by_name = {c["name"]: c for c in listed}
    assert by_name[managed.name]["managed"] is True and by_name[plain.name]["managed"] is False
    assert by_name[plain.name]["state"] == "running" and by_name[plain.name]["image"]

    only_managed = viewer.get(f"{host_path}/containers?q={made.run}&managed=true").get_json()
    assert [c["name"] for c in only_managed] == [managed.name]
    unmanaged = viewer.get(f"{host_path}/containers?q={made.run}&managed=false").get_json()
    assert sorted(c["name"] for c in unmanaged) == sorted([plain.name, stopped.name])
    exited = viewer.get(f"{host_path}/containers?q={made.run}&state=exited").get_json()
    assert [c["name"] for c in exited] == [stopped.name]

    bad = viewer.get(f"{host_path}/containers?state=sleeping")
    assert bad.status_code == 422 and "state" in bad.get_json()["details"]


def test_container_detail_masks_secrets_and_links_ports(
    api_as: Callable, made: Made, host_path: str
) -> None:
    volume, network = made.volume("data"), made.network("net")
    port = free_port()
    env = {"API_KEY": "k-123-secret", "DB_PASSWORD": "hunter2-secret", "GITHUB_TOKEN": "t-secret",
           "PLAIN": "shown-value"}  # fmt: skip
    container = made.container(
        "detail", environment=env, ports={"8080/tcp": ("127.0.0.1", port)},
        volumes={volume: {"bind": "/data", "mode": "rw"}}, network=network,
        restart_policy={"Name": "unless-stopped"},
    )  # fmt: skip
    answer = api_as("viewer").get(f"{host_path}/containers/{container.name}")
    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    for secret in ("k-123-secret", "hunter2-secret", "t-secret"):
        assert secret not in text
    detail = answer.get_json()
    shown = {item["name"]: item for item in detail["env"]}
    assert shown["API_KEY"] == {"name": "API_KEY", "value": None, "masked": True}
    assert shown["DB_PASSWORD"]["masked"] and shown["GITHUB_TOKEN"]["masked"]
    assert shown["PLAIN"] == {"name": "PLAIN", "value": "shown-value", "masked": False}
    assert detail["ports"] == [{"container_port": 8080, "protocol": "tcp", "host_ip": "127.0.0.1",
                                "host_port": port, "url": f"http://127.0.0.1:{port}"}]  # fmt: skip
    assert detail["mounts"][0]["name"] == volume and detail["mounts"][0]["destination"] == "/data"
    assert [n["name"] for n in detail["networks"]] == [network]
    assert detail["command"] == SLEEP and detail["restart_policy"] == "unless-stopped"
    assert detail["command_line"] == "sleep infinity"
    assert detail["state"] == "running" and detail["labels"] == made.labels
    by_id = api_as("viewer").get(f"{host_path}/containers/{container.id[:12]}")
    assert by_id.get_json()["name"] == container.name


def test_values_spectr_keeps_as_secrets_are_masked(
    api_as: Callable, made: Made, host_path: str
) -> None:
    from portal.apps.models import Application, AppRevision

    host = ensure_local_host()
    app_name = made.name("app")[-40:]
    application = Application(name=app_name, host_id=host.id, kind="container")
    db.session.add(application)
    db.session.flush()
    secrets = {"HF_THING": "hf-stored-secret", "OTHER_NAME": "same-value-elsewhere"}
    db.session.add(AppRevision(app_id=application.id, number=1, spec={},
                               secret_env=json.dumps(secrets)))  # fmt: skip
    db.session.commit()
    labels = {"spectr.app": app_name, "spectr.revision": "1", "spectr.managed-by": "spectr.core"}
    env = {"HF_THING": "hf-stored-secret", "ALIAS": "same-value-elsewhere", "MODE": "fast"}
    container = made.container("owned", environment=env, labels=labels)

    answer = api_as("viewer").get(f"{host_path}/containers/{container.name}")
    assert "hf-stored-secret" not in answer.get_data(as_text=True)
    assert "same-value-elsewhere" not in answer.get_data(as_text=True)
    detail = answer.get_json()
    masked = {item["name"]: item["masked"] for item in detail["env"]}
    assert masked["HF_THING"] and masked["ALIAS"] and not masked["MODE"]
    assert detail["application"] == {"id": application.id, "name": app_name}


def test_bulk_actions_need_an_operator_and_are_audited(
    api_as: Callable, made: Made, host_path: str
) -> None:
    first, second = made.container("one"), made.container("two")
    url = f"{host_path}/container-actions"
    body = {"action": "stop", "ids": [first.name, second.id]}
    assert api_as("viewer").post(url, json=body).status_code == 403
    assert first.name in [c.name for c in made.client.containers.list()]  # viewer changed nothing

    operator = api_as("operator")
    stopped = operator.post(url, json=body)
    assert stopped.status_code == 200
    assert [(r["name"], r["ok"]) for r in stopped.get_json()] == [(first.name, True),
                                                                   (second.name, True)]  # fmt: skip
    first.reload(), second.reload()
    assert first.status == "exited" and second.status == "exited"
    targets = [event.target for event in audits("host.container.stop")]
    assert targets == [f"host:spectr-node/container:{first.name}",
                       f"host:spectr-node/container:{second.name}"]  # fmt: skip

    started = operator.post(url, json={"action": "start", "ids": [first.name]}).get_json()
    assert started[0]["ok"] and made.client.containers.get(first.name).status == "running"
    restarted = operator.post(url, json={"action": "restart", "ids": [first.name]})
    assert restarted.status_code == 200

    running = operator.post(url, json={"action": "remove", "ids": [first.name]})
    assert running.status_code == 409 and "running" in running.get_json()["message"].lower()
    assert audits("host.container.remove")[-1].outcome == "failed"
    mixed = operator.post(url, json={"action": "remove", "ids": [first.name, second.name]})
    assert mixed.status_code == 200
    assert [r["ok"] for r in mixed.get_json()] == [False, True]  # second was stopped: removed
    forced = operator.post(url, json={"action": "remove", "ids": [first.name], "force": True})
    assert forced.status_code == 200
    assert not made.client.containers.list(all=True, filters={"label": f"spectr.test={made.run}"})


def test_bulk_actions_refuse_unknown_and_ambiguous_ids(
    api_as: Callable, made: Made, host_path: str
) -> None:
    container = made.container("prefix")
    url, operator = f"{host_path}/container-actions", api_as("operator")
    missing = operator.post(url, json={"action": "stop", "ids": ["spectr-test-no-such"]})
    assert missing.status_code == 404 and missing.get_json()["details"]["results"][0]["error"]
    # The engine would take a short prefix for any container whose id starts with it.
    short = operator.post(url, json={"action": "stop", "ids": [container.id[:4]]})
    assert short.status_code == 404 and "12 characters" in short.get_json()["message"]
    assert made.client.containers.get(container.id).status == "running"
    bad = operator.post(url, json={"action": "explode", "ids": [container.name]})
    assert bad.status_code == 422 and "action" in bad.get_json()["details"]
    empty = operator.post(url, json={"action": "stop", "ids": []})
    assert empty.status_code == 422 and "ids" in empty.get_json()["details"]


def test_stats_of_a_running_container_and_none_of_a_stopped_one(
    api_as: Callable, made: Made, host_path: str
) -> None:
    running = made.container("busy", command=["sh", "-c", "while true; do :; done"])
    stopped = made.container("idle", command=["true"])
    stopped.wait(timeout=30)
    viewer = api_as("viewer")
    sample = viewer.get(f"{host_path}/containers/{running.name}/stats").get_json()
    assert sample["container"] == running.name and sample["memory_usage_bytes"] > 0
    assert sample["cpu_percent"] > 0 and sample["network_rx_bytes"] is not None
    assert sample["at"].endswith("Z") or "+00:00" in sample["at"]
    refused = viewer.get(f"{host_path}/containers/{stopped.name}/stats")
    assert refused.status_code == 409 and "exited" in refused.get_json()["message"]


def test_volumes_list_sizes_users_and_refuse_removing_one_in_use(
    api_as: Callable, made: Made, host_path: str
) -> None:
    used, spare = made.volume("used"), made.volume("spare")
    user = made.container("mounts", volumes={used: {"bind": "/data", "mode": "rw"}})
    user.stop(timeout=0)  # a stopped container still holds its volume
    listed = {v["name"]: v for v in api_as("viewer").get(f"{host_path}/volumes").get_json()}
    assert listed[used]["containers"] == [user.name] and listed[spare]["containers"] == []
    assert listed[used]["labels"] == made.labels and listed[used]["driver"] == "local"
    assert listed[used]["size"] is not None and listed[used]["created"]

    operator = api_as("operator")
    assert api_as("viewer").delete(f"{host_path}/volumes/{spare}").status_code == 403
    refused = operator.delete(f"{host_path}/volumes/{used}")
    assert refused.status_code == 409
    assert user.name in refused.get_json()["message"] and "in use" in refused.get_json()["message"]
    assert audits("host.volume.remove")[-1].outcome == "failed"
    assert operator.delete(f"{host_path}/volumes/{spare}").status_code == 204
    assert spare not in [v.name for v in made.client.volumes.list()]
    assert audits("host.volume.remove")[-1].target == f"host:spectr-node/volume:{spare}"
    assert operator.delete(f"{host_path}/volumes/{spare}").status_code == 404


def test_volume_prune_takes_only_unused_labelled_volumes_and_needs_the_host_name(
    api_as: Callable, made: Made, host_path: str
) -> None:
    unused, kept = made.volume("unused", prune="yes"), made.volume("kept-unlabelled")
    in_use = made.volume("in-use", prune="yes")
    made.container("holder", volumes={in_use: {"bind": "/data", "mode": "rw"}})
    operator, url = api_as("operator"), f"{host_path}/prune/volumes"
    body = {"confirm": "spectr-node", "label": [f"spectr.test={made.run}", "prune=yes"]}
    wrong = operator.post(url, json={**body, "confirm": "another-host"})
    assert wrong.status_code == 422 and "confirm" in wrong.get_json()["details"]
    assert api_as("viewer").post(url, json=body).status_code == 403

    pruned = operator.post(url, json=body)
    assert pruned.status_code == 200 and pruned.get_json()["deleted"] == [unused]
    remaining = {v.name for v in made.client.volumes.list()}
    assert unused not in remaining and {kept, in_use} <= remaining
    event = audits("host.volume.prune")[-1]
    assert event.outcome == "success" and event.details["deleted"] == [unused]


def test_images_list_users_refuse_removal_in_use_and_prune_dangling(
    api_as: Callable, made: Made, host_path: str
) -> None:
    source = made.container("source")
    repository = made.name("img")
    tagged = made.image(source, repository)
    dangling = made.image(source)
    user = made.container("from-image", image=f"{repository}:1")
    listed = {i["id"]: i for i in api_as("viewer").get(f"{host_path}/images").get_json()}
    assert listed[tagged]["tags"] == [f"{repository}:1"] and listed[tagged]["containers"] == [
        user.name
    ]
    assert listed[dangling]["dangling"] is True and listed[dangling]["tags"] == []
    assert listed[tagged]["size"] > 0 and listed[tagged]["created"]

    operator = api_as("operator")
    refused = operator.delete(f"{host_path}/images/{repository}:1")
    assert refused.status_code == 409 and user.name in refused.get_json()["message"]
    short = operator.delete(f"{host_path}/images/{tagged.removeprefix('sha256:')[:4]}")
    assert short.status_code == 404
    prune = {"confirm": "spectr-node", "label": [f"spectr.test={made.run}"]}
    pruned = operator.post(f"{host_path}/prune/images", json=prune).get_json()
    assert pruned["deleted"] == [dangling]  # the tagged one is not dangling
    user.remove(force=True)
    assert operator.delete(f"{host_path}/images/{repository}:1").status_code == 204
    with pytest.raises(docker.errors.ImageNotFound):
        made.client.images.get(tagged)
    assert [e.outcome for e in audits("host.image.remove")] == ["failed", "failed", "success"]


def test_networks_list_users_and_refuse_builtin_or_attached(
    api_as: Callable, made: Made, host_path: str
) -> None:
    attached, free = made.network("attached"), made.network("free")
    user = made.container("on-net", network=attached)
    listed = {n["name"]: n for n in api_as("viewer").get(f"{host_path}/networks").get_json()}
    assert listed[attached]["containers"] == [user.name] and listed[free]["containers"] == []
    assert listed["bridge"]["builtin"] is True and listed[free]["builtin"] is False
    assert listed[free]["driver"] == "bridge" and listed[free]["subnets"]

    operator = api_as("operator")
    builtin = operator.delete(f"{host_path}/networks/bridge")
    assert builtin.status_code == 409 and "built into Docker" in builtin.get_json()["message"]
    in_use = operator.delete(f"{host_path}/networks/{attached}")
    assert in_use.status_code == 409 and user.name in in_use.get_json()["message"]
    assert operator.delete(f"{host_path}/networks/{listed[free]['id']}").status_code == 204
    assert free not in [n.name for n in made.client.networks.list()]
    assert operator.delete(f"{host_path}/networks/no-such-net-{made.run}").status_code == 404


@pytest.fixture
def agent_host(app: Any, tmp_path: Any) -> Iterator[Any]:
    """A host reached through a real agent: its certificate from the portal's CA, mutual TLS."""
    from agent.tests.harness import AgentProcess
    from portal.core.pki import ca_certificate_path
    from portal.core.timeutil import utcnow
    from portal.hosts.models import Host
    from tests.monitoring.fleet_setup import issue_agent_certificate

    instance = app.instance_path
    agent = AgentProcess(tmp_path, issue_agent_certificate(tmp_path),
                         client_ca=str(ca_certificate_path(instance)))  # fmt: skip
    agent.start()
    host = Host(name="agent-host", address="127.0.0.1", agent_url=agent.url,
                agent_port=agent.port, agent_token=agent.token, bootstrapped_at=utcnow(),
                status="ready")  # fmt: skip
    db.session.add(host)
    db.session.commit()
    try:
        yield host
    finally:
        agent.stop()


def test_a_remote_host_is_served_through_its_agent(
    api_as: Callable, made: Made, agent_host: Any
) -> None:
    volume = made.volume("remote")
    port = free_port()
    container = made.container("remote", environment={"SERVICE_TOKEN": "agent-path-secret"},
                               ports={"80/tcp": ("0.0.0.0", port)},
                               volumes={volume: {"bind": "/data", "mode": "rw"}})  # fmt: skip
    path, viewer = f"/api/v1/hosts/{agent_host.id}", api_as("viewer")
    listed = viewer.get(f"{path}/containers?q={made.run}").get_json()
    assert [c["name"] for c in listed] == [container.name]
    answer = viewer.get(f"{path}/containers/{container.name}")
    assert "agent-path-secret" not in answer.get_data(as_text=True)
    detail = answer.get_json()
    assert next(e for e in detail["env"] if e["name"] == "SERVICE_TOKEN")["masked"]
    # Published on every address of a remote host: reached at the host's own address.
    assert {p["url"] for p in detail["ports"]} == {f"http://127.0.0.1:{port}"}
    volumes = {v["name"]: v for v in viewer.get(f"{path}/volumes").get_json()}
    assert volumes[volume]["containers"] == [container.name]
    assert viewer.get(f"{path}/containers/{container.name}/stats").get_json()["pids"] >= 1

    operator = api_as("operator")
    body = {"action": "remove", "ids": [container.name], "force": True}
    assert operator.post(f"{path}/container-actions", json=body).get_json()[0]["ok"]
    assert operator.delete(f"{path}/volumes/{volume}").status_code == 204
    assert volume not in [v.name for v in made.client.volumes.list()]
    assert audits("host.volume.remove")[-1].target == f"host:agent-host/volume:{volume}"
