"""GPU readings over time: the health sweep records each GPU's utilisation, memory and
temperature (the Spectr node's from nvidia-smi on this machine, an agent's from its health
answer), the API serves them, and the host page charts them and follows new samples live.

There is no GPU on this machine: a stand-in `nvidia-smi` on PATH prints what the real one
prints for two H200s, with readings that change at every call. Everything after it is the
real code path: the local node's probe on this machine's Docker engine, the sweep's writes,
the API, the page and its SSE stream.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.hosts.gpu_telemetry import agent_readings, parse_telemetry_csv, store_samples
from portal.hosts.health import Probe, check_all_hosts, record_probes
from portal.hosts.models import Host, HostGpu, HostGpuSample
from portal.hosts.service import ensure_local_host
from tests.apps.helpers import log_in
from tests.apps.test_live_status import _next_event
from tests.support.fake_nvidia_smi import install_fake_nvidia_smi


@pytest.fixture
def fake_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in nvidia-smi first on PATH (no GPU here); returns its call counter file."""
    folder = install_fake_nvidia_smi(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder / "calls"


@pytest.mark.docker
def test_sweeps_of_the_node_record_gpu_readings_that_the_api_and_the_page_show(
    app: Flask,
    client: FlaskClient,
    create_user: Callable[..., Any],
    api_as: Callable[[str], Any],
    fake_nvidia_smi: Path,
) -> None:
    app.config["SPECTR_SSE_HEARTBEAT_SECONDS"] = 1
    node = ensure_local_host()
    for _ in range(3):
        check_all_hosts(timeout_s=5)  # the real sweep: the node's engine, facts, readings
    db.session.expire_all()
    assert [gpu.model for gpu in db.session.get_one(Host, node.id).gpus] == ["NVIDIA H200"] * 2

    series = api_as("viewer").get(f"/api/v1/hosts/{node.id}/gpu-samples?minutes=60").json
    assert [gpu["index"] for gpu in series] == [0, 1]
    first = series[0]["samples"]
    assert len(first) == 3 and all(s["memory_total_mib"] == 143771 for s in first)
    loads = [s["utilization_percent"] for s in first]
    assert loads == sorted(loads) and len(set(loads)) == 3  # each sweep read anew
    assert series[1]["samples"][0]["utilization_percent"] is None  # "[N/A]" is no reading
    assert series[1]["samples"][0]["temperature_celsius"] == 38
    # the overview and the gpu.memory_high event read the newest memory in use
    newest = first[-1]["memory_used_mib"]
    gpu0 = db.session.scalar(db.select(HostGpu).filter_by(host_id=node.id, index=0))
    assert newest > 0 and gpu0.memory_used_mib == newest

    log_in(client, create_user, "viewer")
    page = client.get(f"/hosts/{node.id}").get_data(as_text=True)
    assert f'data-live-url="/hosts/{node.id}/gpu-charts/live?minutes=60"' in page
    assert 'id="gpu-0-charts"' in page and 'id="gpu-1-charts"' in page
    assert page.count("<polyline") == 5  # GPU 1 reports no utilisation: that chart has none
    assert f"{newest} of 143771 MiB" in page and "Utilisation" in page and "Temperature" in page

    response = client.get(f"/hosts/{node.id}/gpu-charts/live?minutes=60", buffered=False)
    pieces = iter(response.response)
    before = _next_event(pieces, "parts")["parts"]["gpu-charts"]
    check_all_hosts(timeout_s=5)  # another sweep: the open page gets the new charts
    after = _next_event(pieces, "parts")["parts"]["gpu-charts"]
    response.close()
    assert before != after and "4 samples" in after and "3 samples" in before


def test_agent_readings_are_stored_per_sweep_and_expire(
    app: Flask, api_as: Callable[[str], Any]
) -> None:
    host = Host(
        name="gpu-7", address="192.0.2.7", status="ready", agent_url="https://192.0.2.7:7443"
    )
    host.gpus = [HostGpu(index=0, model="NVIDIA H100", memory_total_mib=81559, memory_used_mib=0)]
    db.session.add(host)
    db.session.commit()
    # What an agent's /v1/health carries (agent/facts.py gpu_telemetry, canned: no GPU here).
    health = {"status": "ok", "gpus": [
        {"index": 0, "uuid": "GPU-x", "name": "NVIDIA H100", "memory_total_mb": 81559,
         "memory_used_mb": 70000, "utilization_percent": 97.0, "temperature_celsius": 81.0,
         "power_watts": 690.2},
        {"index": "bad"},
    ]}  # fmt: skip
    readings = agent_readings(health)
    assert readings == [{"gpu_index": 0, "utilization_percent": 97.0, "memory_used_mib": 70000,
                         "memory_total_mib": 81559, "temperature_celsius": 81.0,
                         "power_watts": 690.2}]  # fmt: skip
    assert agent_readings({"status": "ok"}) == []  # an older agent sends none

    old = utcnow() - timedelta(hours=30)
    record_probes([Probe(host.id, True, True, gpus=readings)], old)
    record_probes([Probe(host.id, True, True, gpus=readings)])
    db.session.expire_all()
    # the first sweep's sample is older than SPECTR_GPU_HISTORY_HOURS (24): the second deleted it
    assert db.session.query(HostGpuSample).filter_by(host_id=host.id).count() == 1
    assert db.session.get_one(HostGpu, host.gpus[0].id).memory_used_mib == 70000
    series = api_as("viewer").get(f"/api/v1/hosts/{host.id}/gpu-samples").json
    assert series[0]["samples"][0]["power_watts"] == 690.2
    refused = api_as("viewer").get(f"/api/v1/hosts/{host.id}/gpu-samples?minutes=0")
    assert refused.status_code == 422 and "minutes" in refused.json["details"]
    assert store_samples([], utcnow()) == 0


def test_nvidia_smi_telemetry_lines_are_parsed_and_bad_ones_skipped() -> None:
    output = "0, GPU-a, NVIDIA H200, 143771, 512, 87, 64, 412.35\nnot a line\n1, GPU-b, X, [N/A], [N/A], [N/A], [N/A], [N/A]\n"
    parsed = parse_telemetry_csv(output)
    assert parsed[0] == {"gpu_index": 0, "utilization_percent": 87.0, "memory_used_mib": 512,
                         "memory_total_mib": 143771, "temperature_celsius": 64.0,
                         "power_watts": 412.35}  # fmt: skip
    assert parsed[1]["memory_total_mib"] is None and len(parsed) == 2


def test_a_host_without_gpus_says_there_is_nothing_to_chart(
    app: Flask, client: FlaskClient, create_user: Callable[..., Any]
) -> None:
    host = Host(name="cpu-1", address="192.0.2.9", status="ready")
    db.session.add(host)
    db.session.commit()
    log_in(client, create_user, "viewer")
    page = client.get(f"/hosts/{host.id}?minutes=15").get_data(as_text=True)
    assert "reports no GPUs, so there is nothing to chart" in page
    assert "<strong>15 min</strong>" in page
