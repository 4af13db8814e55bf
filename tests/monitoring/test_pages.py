"""The monitoring page and the home page's live fragment, rendered from the database."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from portal.extensions import db
from portal.hosts.models import UNREACHABLE, Host, HostGpu
from portal.hosts.service import ensure_local_host
from portal.monitoring.events import detect_events
from tests.portal.conftest import PASSWORD


def log_in(client: FlaskClient, user) -> None:  # type: ignore[no-untyped-def]
    client.post("/login", data={"username": user.username, "password": PASSWORD})


def test_overview_fragment_shows_hosts_gpus_and_open_alerts(
    app: Flask, client, create_user
) -> None:
    ensure_local_host()
    host = Host(name="gpu-9", address="10.9.0.9", status=UNREACHABLE)
    host.gpus = [
        HostGpu(index=0, model="H200", memory_total_mib=1000, memory_used_mib=400),
        HostGpu(index=1, model="H200", memory_total_mib=1000, memory_used_mib=600),
        HostGpu(index=2, model="H200", memory_total_mib=1000, memory_used_mib=0),
    ]
    db.session.add(host)
    db.session.commit()
    detect_events()
    log_in(client, create_user("viewer"))

    page = client.get("/monitoring/overview").get_data(as_text=True)
    home = client.get("/").get_data(as_text=True)

    assert 'data-host="spectr-node"' in page and 'data-host="gpu-9"' in page
    assert "H200" in page and "1000 / 2000 MiB" in page
    assert "<td>1 / 2</td>" in page  # one GPU above the idle threshold, two free
    assert "host.unreachable" in page
    assert 'data-live-url="/monitoring/overview/live"' in home  # one SSE stream, no polling


def test_monitoring_page_lists_events_and_targets_but_webhooks_only_to_admins(
    app: Flask, client, create_user
) -> None:
    db.session.add(Host(name="gpu-8", address="10.8.0.8", agent_url="https://10.8.0.8:7443"))
    db.session.commit()
    log_in(client, create_user("viewer"))

    page = client.get("/monitoring").get_data(as_text=True)

    assert "10.8.0.8:7443" in page and "host=gpu-8" in page
    assert 'id="webhooks"' not in page


def test_pages_send_anonymous_visitors_to_login(client) -> None:
    assert client.get("/monitoring").status_code == 302
    assert client.get("/monitoring/overview").status_code == 302


def test_overview_counts_gateway_traffic_today_by_hour(any_db_app: Flask) -> None:
    from datetime import datetime

    from portal.monitoring.overview import fleet_overview
    from portal.proxy.models import UsageRecord

    now = datetime(2026, 11, 28, 14, 30)
    rows = [
        (datetime(2026, 11, 28, 9, 5), 200, 30),
        (datetime(2026, 11, 28, 9, 55), 502, 0),
        (datetime(2026, 11, 28, 14, 1), 200, 12),
        (datetime(2026, 11, 27, 23, 59), 200, 1000),  # yesterday: not today's traffic
    ]
    for number, (at, status, tokens) in enumerate(rows):
        db.session.add(
            UsageRecord(
                request_id=f"r{number}",
                at=at,
                key_id="k",
                user="u",
                model="m",
                endpoint="chat",
                replica="a",
                status=status,
                total_tokens=tokens,
            )
        )
    db.session.commit()

    gateway = fleet_overview(now).gateway

    assert (gateway.requests, gateway.tokens, gateway.errors) == (3, 42, 1)
    assert gateway.hourly[9] == 2 and gateway.hourly[14] == 1 and sum(gateway.hourly) == 3


def csrf_token(client: FlaskClient) -> str:
    html = client.get("/monitoring").get_data(as_text=True)
    return html.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


def test_admin_adds_a_webhook_sees_its_secret_once_and_deletes_it(
    app: Flask, client, create_user
) -> None:
    from portal.monitoring.webhooks import list_webhooks

    log_in(client, create_user("admin"))
    token = csrf_token(client)

    created = client.post(
        "/monitoring/webhooks",
        data={"csrf_token": token, "name": "pager", "url": "https://pager.example/in",
              "event_kinds": ["host.unreachable", "gpu.memory_high"]},
        follow_redirects=True,
    )  # fmt: skip
    reloaded = client.get("/monitoring/webhooks/created", follow_redirects=True)
    bad = client.post(
        "/monitoring/webhooks",
        data={"csrf_token": token, "name": "x", "url": "not a url"},
        follow_redirects=True,
    )
    (hook,) = list_webhooks()
    listing = client.get("/monitoring").get_data(as_text=True)
    deleted = client.post(f"/monitoring/webhooks/{hook.id}/delete", data={"csrf_token": token})

    assert created.status_code == 200 and hook.secret in created.get_data(as_text=True)
    assert created.request.path == "/monitoring/webhooks/created"  # post/redirect/get
    assert created.headers["Cache-Control"] == "no-store"
    assert hook.secret not in reloaded.get_data(as_text=True)  # shown once; no second webhook
    assert hook.event_kinds == ["host.unreachable", "gpu.memory_high"]
    assert "url: Not a valid URL." in bad.get_data(as_text=True)
    assert "pager.example" in listing and hook.secret not in listing
    assert deleted.status_code == 302 and list_webhooks() == []


def test_operator_resolves_an_event_from_the_page_but_a_viewer_cannot(
    app: Flask, client, create_user
) -> None:
    db.session.add(Host(name="gpu-7", address="10.7.0.7", status=UNREACHABLE))
    db.session.commit()
    (event,), _ = detect_events()
    log_in(client, create_user("viewer"))
    refused = client.post(
        f"/monitoring/events/{event.id}/resolve", data={"csrf_token": csrf_token(client)}
    )
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    log_in(client, create_user("operator"))

    resolved = client.post(
        f"/monitoring/events/{event.id}/resolve", data={"csrf_token": csrf_token(client)}
    )

    assert refused.status_code == 403
    assert resolved.status_code == 302
    db.session.refresh(event)
    assert event.state == "resolved"
