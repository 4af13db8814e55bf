"""The portal's /metrics: who may read it and what the figures say about the database."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask

from portal.core.operations.models import FAILED, SUCCEEDED, Operation
from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.hosts.models import UNREACHABLE, Host, HostGpu
from portal.hosts.service import ensure_local_host
from portal.monitoring.cli import monitoring_group
from portal.monitoring.metrics import render_metrics


def sample(text: str, name: str, **labels: str) -> float | None:
    """Return the value of one series in an exposition text, or None when absent."""
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(4))
    return None


def add_operation(
    kind: str, state: str, seconds: float, attempts: int = 1, age: timedelta = timedelta(0)
) -> None:
    finished = utcnow() - age
    db.session.add(
        Operation(
            id=f"{kind}-{state}-{seconds}-{attempts}-{age.total_seconds()}",
            kind=kind,
            state=state,
            attempts=attempts,
            started_at=finished - timedelta(seconds=seconds),
            finished_at=finished,
        )
    )
    db.session.commit()


def test_metrics_need_a_token(client) -> None:
    response = client.get("/metrics")

    assert response.status_code == 401
    assert response.get_json()["code"] == "unauthorized"


def test_metrics_count_operations_by_kind_state_and_bucket_durations(any_db_app: Flask) -> None:
    add_operation("deploy", SUCCEEDED, 0.3)
    add_operation("deploy", SUCCEEDED, 42.0, attempts=3)
    add_operation("deploy", FAILED, 2.0, attempts=2)

    # Rendered directly: the request fixtures would bring a SQLite app along.
    text = render_metrics()[0].decode()

    assert sample(text, "spectr_operations", kind="deploy", state="succeeded") == 2
    assert sample(text, "spectr_operations", kind="deploy", state="failed") == 1
    assert sample(text, "spectr_operation_retries_total", kind="deploy") == 3  # 2 + 1 extra
    bucket = "spectr_operation_duration_seconds_bucket"
    assert sample(text, bucket, kind="deploy", le="0.5") == 1
    assert sample(text, bucket, kind="deploy", le="5.0") == 2
    assert sample(text, bucket, kind="deploy", le="60.0") == 3
    assert sample(text, bucket, kind="deploy", le="+Inf") == 3
    assert sample(text, "spectr_operation_duration_seconds_count", kind="deploy") == 3
    total = sample(text, "spectr_operation_duration_seconds_sum", kind="deploy")
    assert total is not None and abs(total - 44.3) < 0.01


def test_metrics_show_hosts_by_status_gpus_and_queue(app: Flask, api_as) -> None:
    ensure_local_host()
    gpu_host = Host(name="gpu-1", address="10.0.0.5", status=UNREACHABLE)
    gpu_host.gpus = [HostGpu(index=0, model="H200", memory_total_mib=1000, memory_used_mib=250)]
    db.session.add(gpu_host)
    db.session.commit()

    text = api_as("viewer").get("/metrics").get_data(as_text=True)

    assert sample(text, "spectr_hosts", status="ready") == 1
    assert sample(text, "spectr_hosts", status="unreachable") == 1
    assert sample(text, "spectr_hosts", status="degraded") == 0
    assert sample(text, "spectr_gpus", model="H200") == 1
    assert sample(text, "spectr_gpu_memory_used_mib", model="H200") == 250
    assert sample(text, "spectr_queue_depth", queue="operations_waiting") == 0
    assert sample(text, "spectr_applications", status="running") in (None, 0)


def test_request_latency_is_labelled_by_route_not_path(app: Flask, api_as) -> None:
    viewer = api_as("viewer")
    viewer.get("/api/v1/operations/00000000-0000-0000-0000-000000000000")

    text = viewer.get("/metrics").get_data(as_text=True)

    count = sample(
        text,
        "spectr_http_request_duration_seconds_count",
        method="GET",
        route="/api/v1/operations/<operation_id>",
        status="404",
    )
    assert count is not None and count >= 1
    assert "00000000-0000" not in text


def test_scrape_token_command_makes_a_viewer_whose_token_reads_metrics(app: Flask) -> None:
    from portal.admin import service

    runner = app.test_cli_runner()
    first = runner.invoke(monitoring_group, ["scrape-token"], catch_exceptions=False)
    second = runner.invoke(monitoring_group, ["scrape-token"], catch_exceptions=False)

    assert first.exit_code == 0 and second.exit_code == 0
    token = first.stdout.strip().splitlines()[-1]
    assert service.get_user_by_name("prometheus").role == "viewer"
    client = app.test_client()
    assert client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # The token cannot change anything: a viewer.
    denied = client.post(
        "/api/v1/operations",
        json={"kind": "noop"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert denied.status_code == 403


def test_scrape_token_refuses_a_user_with_more_than_viewer_rights(app: Flask, create_user) -> None:
    create_user("admin", username="prometheus")

    result = app.test_cli_runner().invoke(monitoring_group, ["scrape-token"])

    assert result.exit_code != 0
    assert "must be a viewer" in result.output


def test_duration_histogram_counts_each_operation_once_across_scrapes(app: Flask, api_as) -> None:
    viewer = api_as("viewer")
    add_operation("image.pull", SUCCEEDED, 3.0, age=timedelta(hours=2))  # settled long ago
    add_operation("image.pull", SUCCEEDED, 7.0)  # just finished

    first = viewer.get("/metrics").get_data(as_text=True)
    second = viewer.get("/metrics").get_data(as_text=True)
    add_operation("image.pull", FAILED, 400.0)
    third = viewer.get("/metrics").get_data(as_text=True)

    count = "spectr_operation_duration_seconds_count"
    assert sample(first, count, kind="image.pull") == 2
    assert sample(second, count, kind="image.pull") == 2
    assert sample(third, count, kind="image.pull") == 3
    bucket = "spectr_operation_duration_seconds_bucket"
    assert sample(third, bucket, kind="image.pull", le="5.0") == 1
    assert sample(third, bucket, kind="image.pull", le="300.0") == 2
