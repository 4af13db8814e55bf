"""Many hosts unreachable at once: every one gets its event, each webhook one grouped POST."""

from __future__ import annotations

import hashlib
import hmac
import json

from flask import Flask
from sqlalchemy import func, select, update

from portal.extensions import db
from portal.hosts.models import READY, UNREACHABLE, Host
from portal.monitoring.models import Event, EventDelivery
from portal.monitoring.tasks import run_event_detection
from tests.monitoring.test_events import add_host, receiver  # noqa: F401 - the fixture


def test_a_rack_going_dark_is_one_grouped_delivery_per_webhook(
    app: Flask,
    api_as,
    receiver,  # noqa: F811
) -> None:
    admin = api_as("admin")
    created = admin.post("/api/v1/monitoring/webhooks", json={"name": "pager", "url": receiver.url})
    secret = created.get_json()["signing_secret"]
    for number in range(60):
        add_host(f"rack7-{number:02d}", UNREACHABLE)

    run_event_detection()  # the queue runs at once in tests: delivered before it returns

    assert db.session.scalar(select(func.count()).select_from(Event)) == 60
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Spectr-Signature"] == f"sha256={expected}"
    assert headers["X-Spectr-Event"] == "host.unreachable.opened"
    assert headers["X-Spectr-Event-Count"] == "60"
    document = json.loads(body)
    assert (document["transition"], document["kind"], document["count"]) == (
        "opened", "host.unreachable", 60
    )  # fmt: skip
    assert len(document["events"]) == 50 and document["more"] == 10
    assert document["events"][0]["subject"] == "rack7-00"
    hook_id = created.get_json()["id"]
    listed = admin.get(f"/api/v1/monitoring/webhooks/{hook_id}/deliveries").get_json()
    assert [(d["state"], d["event_count"]) for d in listed] == [("delivered", 60)]

    db.session.execute(update(Host).values(status=READY))
    db.session.commit()
    run_event_detection()

    resolved = json.loads(receiver.received[1][1])
    assert (resolved["transition"], resolved["count"], len(receiver.received)) == (
        "resolved",
        60,
        2,
    )
    assert db.session.scalar(select(func.count()).select_from(EventDelivery)) == 2


def test_a_few_events_keep_one_delivery_each(app: Flask, api_as, receiver) -> None:  # noqa: F811
    api_as("admin").post("/api/v1/monitoring/webhooks", json={"name": "chat", "url": receiver.url})
    add_host("gpu-a", UNREACHABLE)
    add_host("gpu-b", UNREACHABLE)

    run_event_detection()

    subjects = sorted(json.loads(body)["event"]["subject"] for _, body in receiver.received)
    assert subjects == ["gpu-a", "gpu-b"]
    assert {headers["X-Spectr-Event-Count"] for headers, _ in receiver.received} == {"1"}
