"""End to end on a real SSH test host: add -> bootstrap through the API -> live log -> ready.

A real `spectr run` process (portal, embedded worker, ticker) bootstraps a Docker-in-Docker
test host over SSH with ansible-runner; the agent it installs is then reached over TLS by the
health checks, which notice the host going away and coming back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.hosts.conftest import PortalProcess, wait_for
from tests.support.testhosts import TestHost

pytestmark = [pytest.mark.slow, pytest.mark.docker]

HEALTH_INTERVAL_S = 5
# Stands in for a GPU, which this machine does not have: a script answering like
# `nvidia-smi` on a machine with two H100 SXM5 80GB cards (driver 550.54.15, CUDA 12.4).
NVIDIA_SMI_STANDIN = r"""#!/bin/sh
case "$1" in
  --query-gpu=*)
    echo "0, GPU-8b2f5a6e-3c1d-4e9f-a7b0-1d2c3e4f5a60, NVIDIA H100 80GB HBM3, 81559, 1, 550.54.15"
    echo "1, GPU-9c3a6b7f-4d2e-5fa0-b8c1-2e3d4f5a6b71, NVIDIA H100 80GB HBM3, 81559, 1, 550.54.15"
    ;;
  *)
    echo "+-----------------------------------------------------------------------------------------+"
    echo "| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |"
    echo "+-----------------------------------------------------------------------------------------+"
    ;;
esac
"""
AGENT_START = [
    "start-stop-daemon", "--start", "--background", "--make-pidfile",
    "--pidfile", "/run/spectr-agent.pid", "--chuid", "spectr",
    "--output", "/var/log/spectr/spectr-agent.log", "--exec", "/usr/bin/python3", "--",
    "/opt/spectr-agent/spectr-agent.pyz", "--config", "/etc/spectr-agent/agent.json",
]  # fmt: skip


@pytest.fixture
def gpu_host(make_test_host: Any) -> TestHost:
    host = make_test_host("hosts-e2e", dind=True, extra_ports=(7443,))
    host.exec("sh", "-c", "cat > /usr/local/bin/nvidia-smi", stdin=NVIDIA_SMI_STANDIN.encode())
    host.exec("chmod", "0755", "/usr/local/bin/nvidia-smi")
    return host


def follow_log(portal: PortalProcess, operation_id: str) -> Iterator[dict[str, Any]]:
    """Yield the operation's log lines from the SSE stream, then its end event."""
    path = f"/api/v1/operations/{operation_id}/log?follow=1"
    with portal.api.stream("GET", path, timeout=900) as response:
        assert response.status_code == 200
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                yield {"event": event, **json.loads(line[len("data: ") :])}
                if event == "end":
                    return


def host_status(portal: PortalProcess, host_id: int) -> str:
    return portal.api.get(f"/api/v1/hosts/{host_id}").json()["status"]


def add_host(portal: PortalProcess, host: TestHost) -> dict[str, Any]:
    response = portal.api.post(
        "/api/v1/hosts",
        json={
            "name": "gpu-node-1",
            "address": "127.0.0.1",
            "ssh_port": host.port,
            "ssh_user": "ops",
            "become_method": "sudo",
            "ssh_private_key": host.private_key_path.read_text(),
            "agent_port": host.published_ports[7443],
            "labels": {"gpu": "h100", "rack": "r1"},
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_add_bootstrap_ready_then_unreachable_and_back(
    portal_process: PortalProcess, gpu_host: TestHost
) -> None:
    portal = portal_process
    settings = portal.api.patch(
        "/api/v1/settings", json={"health_check_interval_seconds": HEALTH_INTERVAL_S}
    )
    assert settings.status_code == 200, settings.text
    host = add_host(portal, gpu_host)
    assert host["status"] == "new"
    assert "ssh_private_key" not in host and "BEGIN" not in json.dumps(host)

    started = portal.api.post(f"/api/v1/hosts/{host['id']}/bootstrap", json={})
    assert started.status_code == 202, started.text
    operation_id = started.json()["id"]

    lines, state_while_tasks_ran = [], None
    for item in follow_log(portal, operation_id):
        if item["event"] == "line":
            lines.append(item["message"])
            if state_while_tasks_ran is None and item["message"].startswith("TASK ["):
                state_while_tasks_ran = portal.api.get(f"/api/v1/operations/{operation_id}").json()[
                    "state"
                ]
        elif item["event"] == "end":
            assert item["state"] == "succeeded", (item, lines[-30:], portal.log_tail())

    assert state_while_tasks_ran == "running"  # lines streamed while the playbook ran
    assert any(line.startswith("first contact, recorded SSH host key") or
               "first contact, recorded SSH host key SHA256:" in line for line in lines)  # fmt: skip
    assert any(line.startswith("changed: [gpu-node-1]") for line in lines)
    assert any(line.startswith("TASK [spectr.core.agent : Wait for the agent's health endpoint]")
               or "Wait for the agent's health endpoint" in line for line in lines)  # fmt: skip
    assert not any("BEGIN" in line or "PRIVATE KEY" in line for line in lines)

    shown = portal.api.get(f"/api/v1/hosts/{host['id']}").json()
    assert shown["status"] == "ready", shown["status_reason"]
    assert shown["facts"]["os"]["id"] == "debian"
    assert shown["facts"]["docker"]["engine_version"]
    assert shown["summary"]["cpu_count"] >= 1
    assert shown["agent_version"]
    assert shown["agent_url"] == f"https://127.0.0.1:{gpu_host.published_ports[7443]}"
    keygen = gpu_host.exec("ssh-keygen", "-lf", "/etc/ssh/ssh_host_ed25519_key.pub")
    assert shown["host_key_fingerprint"] == keygen.split()[1]
    assert [c["to_status"] for c in reversed(shown["status_changes"])] == ["bootstrapping", "ready"]

    _gpus_recorded(portal, shown)
    _goes_unreachable_and_comes_back(portal, gpu_host, shown["id"])
    _bootstrap_again_changes_nothing(portal, shown["id"])
    _delete_with_cleanup_removes_the_agent(portal, gpu_host, shown["id"])


def _gpus_recorded(portal: PortalProcess, shown: dict[str, Any]) -> None:
    gpus = shown["gpus"]
    assert [gpu["model"] for gpu in gpus] == ["NVIDIA H100 80GB HBM3"] * 2
    assert gpus[0]["memory_total_mib"] == 81559
    assert gpus[0]["driver_version"] == "550.54.15"
    assert gpus[0]["cuda_version"] == "12.4"
    assert gpus[1]["uuid"] == "GPU-9c3a6b7f-4d2e-5fa0-b8c1-2e3d4f5a6b71"
    by_model = portal.api.get("/api/v1/hosts", params={"gpu_model": "h100"}).json()
    assert [h["name"] for h in by_model] == ["gpu-node-1"]
    assert portal.api.get("/api/v1/hosts", params={"gpu_model": "A100"}).json() == []
    assert [h["name"] for h in portal.api.get("/api/v1/hosts?label=gpu=h100").json()] == [
        "gpu-node-1"
    ]


def _goes_unreachable_and_comes_back(portal: PortalProcess, host: TestHost, host_id: int) -> None:
    host.stop()
    wait_for(
        lambda: host_status(portal, host_id) == "unreachable",
        4 * HEALTH_INTERVAL_S + 30,
        "the host to become unreachable",
    )
    host.start()  # Docker publishes new ports on 127.0.0.1 after a restart
    # The test host has no init system: start the agent as the host's boot would.
    host.exec(*AGENT_START)
    moved = portal.api.patch(
        f"/api/v1/hosts/{host_id}",
        json={"ssh_port": host.port, "agent_port": host.published_ports[7443]},
    )
    assert moved.status_code == 200, moved.text
    wait_for(
        lambda: host_status(portal, host_id) == "ready",
        4 * HEALTH_INTERVAL_S + 30,
        "the host to be ready again by itself",
    )
    history = portal.api.get(f"/api/v1/hosts/{host_id}").json()["status_changes"]
    assert [c["to_status"] for c in history[:2]] == ["ready", "unreachable"]
    assert "did not answer 2 checks in a row" in history[1]["reason"]


def _bootstrap_again_changes_nothing(portal: PortalProcess, host_id: int) -> None:
    started = portal.api.post(f"/api/v1/hosts/{host_id}/bootstrap", json={})
    assert started.status_code == 202
    items = list(follow_log(portal, started.json()["id"]))
    assert items[-1]["state"] == "succeeded", [i.get("message") for i in items[-20:]]
    recap = next(i["message"] for i in items if i.get("message", "").startswith("RECAP"))
    assert "failed=0" in recap and "unreachable=0" in recap
    assert host_status(portal, host_id) == "ready"


def _delete_with_cleanup_removes_the_agent(
    portal: PortalProcess, host: TestHost, host_id: int
) -> None:
    started = portal.api.delete(f"/api/v1/hosts/{host_id}?cleanup=1")
    assert started.status_code == 202, started.text
    items = list(follow_log(portal, started.json()["id"]))
    assert items[-1]["state"] == "succeeded", [i.get("message") for i in items[-20:]]
    assert portal.api.get(f"/api/v1/hosts/{host_id}").status_code == 404
    left = host.exec("sh", "-c", "ls /opt/spectr-agent /etc/spectr-agent 2>&1 || true")
    assert "No such file or directory" in left
