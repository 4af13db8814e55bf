"""Container endpoints of a real agent against the real Docker engine."""

from __future__ import annotations

import pytest

from agent.tests.harness import free_port

pytestmark = [pytest.mark.slow, pytest.mark.docker]

SLEEPER = ["sleep", "infinity"]


def _create(api, image, name, **spec):
    answer = api.post("/v1/containers", json={"image": image, "name": name, **spec})
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_run_from_full_spec_reaches_the_engine(
    api, image, container_names, docker_client, tmp_path
):
    name = container_names("spec")
    created = _create(
        api, image, name, command=SLEEPER, env={"MODE": "test"},
        labels={"spectr.test": name}, ports=[{"container_port": 8000}],
        volumes=[{"source": str(tmp_path), "target": "/data", "read_only": True}],
        restart_policy={"name": "on-failure", "maximum_retry_count": 2},
        cpus=0.5, memory_bytes=64 * 1024 * 1024, user="nobody", working_dir="/tmp",
    )  # fmt: skip
    assert created["started"] is True and created["name"] == name
    attrs = docker_client.containers.get(name).attrs
    host = attrs["HostConfig"]
    assert attrs["State"]["Running"] is True
    assert "MODE=test" in attrs["Config"]["Env"]
    assert attrs["Config"]["User"] == "nobody" and attrs["Config"]["WorkingDir"] == "/tmp"
    assert host["PortBindings"]["8000/tcp"][0]["HostIp"] == "127.0.0.1"
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert host["NanoCpus"] == 500_000_000 and host["Memory"] == 64 * 1024 * 1024
    assert attrs["Mounts"][0]["Destination"] == "/data" and attrs["Mounts"][0]["RW"] is False


def test_gpu_request_is_recorded_on_the_container(api, image, container_names, docker_client):
    # No GPU or NVIDIA runtime here: create without starting and check the engine kept it.
    name = container_names("gpu")
    _create(api, image, name, command=SLEEPER, gpus={"device_ids": ["0"]}, start=False)
    request = docker_client.containers.get(name).attrs["HostConfig"]["DeviceRequests"][0]
    assert request["Driver"] == "nvidia" and request["DeviceIDs"] == ["0"]
    assert request["Capabilities"] == [["gpu"]]


def test_inspect_and_list_by_labels(api, image, container_names):
    first, second = container_names("lbl"), container_names("lbl")
    _create(api, image, first, command=SLEEPER, labels={"spectr.test": first, "tier": "a"})
    _create(api, image, second, command=SLEEPER, labels={"spectr.test": first, "tier": "b"},
            start=False)  # fmt: skip
    both = api.get("/v1/containers", params=[("label", f"spectr.test={first}")]).json()
    assert sorted(c["name"] for c in both) == sorted([first, second])
    tier_a = api.get("/v1/containers",
                     params=[("label", f"spectr.test={first}"), ("label", "tier=a")]).json()  # fmt: skip
    assert [c["name"] for c in tier_a] == [first]
    running = api.get("/v1/containers", params={"label": f"spectr.test={first}", "all": "0"})
    assert [c["name"] for c in running.json()] == [first]
    detail = api.get(f"/v1/containers/{first}").json()
    assert detail["state"] == "running" and detail["labels"]["tier"] == "a"
    assert detail["raw"]["Name"] == f"/{first}"


def test_start_stop_restart_remove_cycle(api, image, container_names, docker_client):
    name = container_names("cycle")
    _create(api, image, name, command=SLEEPER, start=False)
    assert api.post(f"/v1/containers/{name}/start").status_code == 204
    assert api.post(f"/v1/containers/{name}/start").status_code == 204  # already running
    started = docker_client.containers.get(name).attrs["State"]["StartedAt"]
    assert api.post(f"/v1/containers/{name}/restart", params={"timeout": 0}).status_code == 204
    assert docker_client.containers.get(name).attrs["State"]["StartedAt"] != started
    assert api.post(f"/v1/containers/{name}/stop", params={"timeout": 1}).status_code == 204
    assert api.get(f"/v1/containers/{name}").json()["state"] == "exited"
    assert api.post(f"/v1/containers/{name}/stop").status_code == 204  # already stopped
    assert api.delete(f"/v1/containers/{name}").status_code == 204
    assert api.get(f"/v1/containers/{name}").status_code == 404


def test_remove_running_needs_force(api, image, container_names):
    name = container_names("force")
    _create(api, image, name, command=SLEEPER)
    refused = api.delete(f"/v1/containers/{name}")
    assert refused.status_code == 409 and refused.json()["code"] == "conflict"
    assert (
        api.delete(f"/v1/containers/{name}", params={"force": 1, "volumes": 1}).status_code == 204
    )


def test_stats_sample(api, image, container_names):
    name = container_names("stats")
    _create(api, image, name, command=SLEEPER)
    stats = api.get(f"/v1/containers/{name}/stats").json()
    assert stats["memory_usage_bytes"] > 0 and stats["pids"] >= 1
    assert "cpu_percent" in stats and "cpu_stats" in stats["raw"]


def test_engine_errors_are_mapped(api, image, container_names):
    name = container_names("err")
    missing = api.get("/v1/containers/spectr-test-does-not-exist")
    assert missing.status_code == 404
    assert set(missing.json()) == {"code", "message", "details"}
    _create(api, image, name, command=SLEEPER)
    taken = api.post("/v1/containers", json={"image": image, "name": name})
    assert taken.status_code == 409
    no_image = api.post("/v1/containers", json={"image": "spectr-test-no-such-image:1"})
    assert no_image.status_code == 404


def test_engine_failure_is_502_and_leaves_no_container(api, image, container_names, docker_client):
    port = free_port()
    first, second = container_names("port"), container_names("port")
    spec = {
        "image": image,
        "command": SLEEPER,
        "ports": [{"container_port": 80, "host_port": port}],
    }
    assert api.post("/v1/containers", json={**spec, "name": first}).status_code == 201
    clash = api.post("/v1/containers", json={**spec, "name": second})
    assert clash.status_code == 502
    assert clash.json()["code"] == "engine_error"
    assert "allocated" in clash.json()["message"]
    assert not docker_client.containers.list(all=True, filters={"name": second})


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("POST", "/v1/containers", {"content": b"{not json"}, 400),
        ("POST", "/v1/containers", {"json": ["image"]}, 400),
        ("POST", "/v1/containers", {"json": {"image": "x", "ports": "80"}}, 422),
        ("GET", "/v1/containers", {"params": {"all": "maybe"}}, 400),
        ("GET", "/v1/containers", {"params": {"all": ""}}, 400),
        ("GET", "/v1/containers", {"params": {"label": "=v"}}, 400),
        ("POST", "/v1/containers/x/stop", {"params": {"timeout": "-1"}}, 400),
        ("PUT", "/v1/containers", {}, 405),
        ("GET", "/v2/containers", {}, 404),
    ],
)
def test_bad_input_gets_a_4xx_in_the_error_shape(api, method, path, kwargs, status):
    answer = api.request(method, path, **kwargs)
    assert answer.status_code == status
    body = answer.json()
    assert set(body) == {"code", "message", "details"} and body["message"]
    assert "Traceback" not in answer.text


@pytest.mark.parametrize("method", ["PUT", "PATCH", "TRACE", "QUERY"])
def test_a_method_no_route_serves_is_405_with_allow(api, method):
    answer = api.request(method, "/v1/containers")
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "GET, POST"
    assert answer.json()["code"] == "method_not_allowed"


def test_head_gets_the_headers_and_no_body(api):
    answer = api.request("HEAD", "/v1/containers")
    assert answer.status_code == 405 and answer.headers["Allow"] == "GET, POST"
    assert answer.content == b""


def test_unreachable_engine_is_502_and_health_says_degraded(agent_factory, pki, tmp_path):
    orphan = agent_factory(docker_socket=str(tmp_path / "no-docker.sock"))
    with orphan.http(pki.ca.cert_path) as client:
        health = client.get("/v1/health").json()
        listing = client.get("/v1/containers")
    assert health["status"] == "degraded" and health["engine"]["reachable"] is False
    assert listing.status_code == 502 and listing.json()["code"] == "engine_unreachable"
