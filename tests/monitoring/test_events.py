"""Events Spectr raises by itself, the event API, and signed, retried webhook deliveries."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask

from portal.apps.models import CONTAINER, Application
from portal.core.operations.models import FAILED, Operation
from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.hosts.models import READY, UNREACHABLE, Host, HostContainer, HostGpu
from portal.monitoring.events import detect_events, resolve_event
from portal.monitoring.tasks import run_event_detection
from tests.support.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def add_host(name: str, status: str) -> Host:
    host = Host(name=name, address="10.3.0.1", status=status, status_reason="no answer")
    db.session.add(host)
    db.session.commit()
    return host


def test_unreachable_host_opens_one_event_and_recovery_resolves_it(any_db_app: Flask) -> None:
    host = add_host("gpu-1", UNREACHABLE)

    opened, _ = detect_events()
    again, _ = detect_events()
    host.status = READY
    db.session.commit()
    _, resolved = detect_events()

    assert [(e.kind, e.subject, e.severity) for e in opened] == [
        ("host.unreachable", "gpu-1", "critical")
    ]
    assert again == []
    assert [e.id for e in resolved] == [opened[0].id]
    assert resolved[0].state == "resolved" and resolved[0].resolved_at is not None


def test_restarting_container_and_full_gpu_raise_events(app: Flask) -> None:
    host = add_host("gpu-2", READY)
    host.containers = [
        HostContainer(
            container_id="c1", name="vllm", image="vllm", state="restarting", restart_count=7
        ),
        HostContainer(container_id="c2", name="ok", image="x", state="running"),
        # Restarting too, but no application of Spectr's: someone else's container.
        HostContainer(container_id="c3", name="by-hand", image="x", state="restarting"),
    ]
    db.session.add(Application(name="vllm", host_id=host.id, kind=CONTAINER, status="running"))
    host.gpus = [
        HostGpu(index=0, model="H200", memory_total_mib=1000, memory_used_mib=950),
        HostGpu(
            index=1, model="H200", memory_total_mib=1000, memory_used_mib=900
        ),  # 90 %: not above
    ]
    db.session.commit()

    opened, _ = detect_events()

    kinds = sorted((e.kind, e.subject) for e in opened)
    assert kinds == [("container.restarting", "gpu-2/vllm"), ("gpu.memory_high", "gpu-2/gpu0")]


def test_a_restarting_event_closes_only_once_the_container_runs_steadily(app: Flask) -> None:
    app.config["SPECTR_MONITORING_STEADY_SECONDS"] = 60
    host = add_host("gpu-4", READY)
    looping = HostContainer(container_id="c1", name="web", image="x", state="restarting")
    fresh = HostContainer(container_id="c2", name="api", image="x", state="running",
                          started_at=utcnow())  # fmt: skip
    host.containers = [looping, fresh]
    for name in ("web", "api"):
        db.session.add(Application(name=name, host_id=host.id, kind=CONTAINER, status="running"))
    db.session.commit()
    opened, _ = detect_events()
    assert [e.subject for e in opened] == ["gpu-4/web"]  # a fresh start alone opens nothing

    # Caught running between two crashes: the event stays open, and no second one opens.
    looping.state, looping.started_at = "running", utcnow() - timedelta(seconds=5)
    db.session.commit()
    assert detect_events() == ([], [])
    looping.state = "restarting"
    db.session.commit()
    assert detect_events() == ([], [])
    # Stopped for a moment (a restart by hand), as the sweep saw it just now: still open.
    looping.state, looping.started_at, looping.updated_at = "exited", None, utcnow()
    db.session.commit()
    assert detect_events() == ([], [])

    looping.state, looping.started_at = "running", utcnow() - timedelta(seconds=61)
    db.session.commit()
    _, resolved = detect_events()
    assert [e.id for e in resolved] == [opened[0].id]


def test_a_restarting_event_closes_when_its_container_stays_stopped(app: Flask) -> None:
    app.config["SPECTR_MONITORING_STEADY_SECONDS"] = 60
    host = add_host("gpu-5", READY)
    looping = HostContainer(container_id="c1", name="web", image="x", state="restarting")
    host.containers = [looping]
    db.session.add(Application(name="web", host_id=host.id, kind=CONTAINER, status="running"))
    db.session.commit()
    opened, _ = detect_events()

    # an operator stopped it (or its restart policy gave up) a while ago
    looping.state, looping.updated_at = "exited", utcnow() - timedelta(seconds=61)
    db.session.commit()
    _, resolved = detect_events()
    assert [e.id for e in resolved] == [opened[0].id]


def test_a_failed_deployment_raises_one_event_even_after_it_is_resolved(
    any_db_app: Flask,
) -> None:
    recent = utcnow()
    db.session.add_all(
        [
            Operation(id="op-deploy", kind="app.deploy", target="vllm@gpu-1", state=FAILED,
                      error="image not found", finished_at=recent),
            Operation(id="op-old", kind="app.deploy", state=FAILED, finished_at=recent - timedelta(days=3)),
            Operation(id="op-pull", kind="image.pull", state=FAILED, finished_at=recent),
        ]
    )  # fmt: skip
    db.session.commit()

    opened, _ = detect_events()
    resolved = resolve_event(opened[0])
    reopened, _ = detect_events()

    assert [(e.kind, e.details["operation_id"]) for e in opened] == [
        ("deployment.failed", "op-deploy")
    ]
    assert "image not found" in opened[0].message
    assert resolved.state == "resolved"
    assert reopened == []


def test_event_api_lists_filters_and_checks_input(app: Flask, api_as) -> None:
    add_host("gpu-3", UNREACHABLE)
    detect_events()
    viewer = api_as("viewer")

    listed = viewer.get("/api/v1/monitoring/events?state=open").get_json()
    bad = viewer.get("/api/v1/monitoring/events?kind=cosmic.rays&limit=0")
    forbidden = viewer.post(f"/api/v1/monitoring/events/{listed[0]['id']}/resolve")
    missing = api_as("operator").post("/api/v1/monitoring/events/999999/resolve")

    assert [(e["kind"], e["state"]) for e in listed] == [("host.unreachable", "open")]
    assert bad.status_code == 422 and set(bad.get_json()["details"]) == {"kind", "limit"}
    assert forbidden.status_code == 403
    assert missing.status_code == 404


def test_webhook_receives_signed_opened_and_resolved_events(app: Flask, api_as, receiver) -> None:
    admin = api_as("admin")
    created = admin.post(
        "/api/v1/monitoring/webhooks",
        json={"name": "ops-chat", "url": receiver.url, "event_kinds": ["host.unreachable"]},
    )
    secret = created.get_json()["signing_secret"]
    host = add_host("gpu-4", UNREACHABLE)

    run_event_detection()  # the queue runs immediately in tests: delivered before it returns
    host.status = READY
    db.session.commit()
    run_event_detection()

    assert created.status_code == 201
    transitions = []
    for headers, body in receiver.received:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Spectr-Signature"] == f"sha256={expected}"
        document = json.loads(body)
        transitions.append((document["transition"], document["event"]["subject"]))
    assert transitions == [("opened", "gpu-4"), ("resolved", "gpu-4")]
    listed = admin.get("/api/v1/monitoring/webhooks").get_json()
    assert "secret" not in json.dumps(listed)


def test_webhook_delivery_is_retried_until_the_receiver_answers(
    app: Flask, api_as, receiver, monkeypatch
) -> None:
    monkeypatch.setattr("portal.monitoring.webhooks.backoff_seconds", lambda attempt: 0.01)
    receiver.failures = 2
    admin = api_as("admin")
    hook = admin.post("/api/v1/monitoring/webhooks", json={"name": "flaky", "url": receiver.url})
    add_host("gpu-5", UNREACHABLE)

    run_event_detection()

    deliveries = admin.get(f"/api/v1/monitoring/webhooks/{hook.get_json()['id']}/deliveries")
    assert [(d["state"], d["attempts"], d["last_outcome"]) for d in deliveries.get_json()] == [
        ("delivered", 3, "HTTP 204")
    ]
    assert len(receiver.received) == 3


def test_webhook_gives_up_after_the_last_attempt(app: Flask, api_as, receiver, monkeypatch) -> None:
    monkeypatch.setattr("portal.monitoring.webhooks.backoff_seconds", lambda attempt: 0.01)
    app.config["SPECTR_MONITORING_WEBHOOK_MAX_ATTEMPTS"] = 2
    receiver.failures = 10
    admin = api_as("admin")
    hook = admin.post("/api/v1/monitoring/webhooks", json={"name": "down", "url": receiver.url})
    add_host("gpu-6", UNREACHABLE)

    run_event_detection()

    deliveries = admin.get(f"/api/v1/monitoring/webhooks/{hook.get_json()['id']}/deliveries")
    assert [(d["state"], d["attempts"]) for d in deliveries.get_json()] == [("failed", 2)]


def test_webhook_input_is_checked(app: Flask, api_as, receiver) -> None:
    admin = api_as("admin")
    admin.post("/api/v1/monitoring/webhooks", json={"name": "one", "url": receiver.url})

    bad = admin.post(
        "/api/v1/monitoring/webhooks",
        json={"name": "two", "url": "ftp://x", "event_kinds": ["nope"], "secret": "short"},
    )
    duplicate = admin.post("/api/v1/monitoring/webhooks", json={"name": "one", "url": receiver.url})
    by_operator = api_as("operator").post(
        "/api/v1/monitoring/webhooks", json={"name": "three", "url": receiver.url}
    )
    missing = admin.delete("/api/v1/monitoring/webhooks/424242")

    assert bad.status_code == 422
    assert set(bad.get_json()["details"]) == {"url", "event_kinds", "secret"}
    assert duplicate.status_code == 409
    assert by_operator.status_code == 403
    assert missing.status_code == 404
