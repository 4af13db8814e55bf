"""Live status beyond the application page: the applications list, the hosts list and the
dashboard each hold one Server-Sent Events stream that sends their status cells again when a
health sweep changes them, and heartbeats while nothing does. Sweeps are recorded through the
real code path (record_probes) with the containers a probe would have seen."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import Flask
from flask.testing import FlaskClient

from portal.extensions import db
from portal.hosts.health import Probe, record_probes
from portal.hosts.models import Host
from portal.hosts.service import ensure_local_host
from tests.apps.helpers import log_in
from tests.apps.test_live_status import _next_event, _running_app, _sweep


def test_the_applications_list_follows_the_sweep_on_one_stream(
    app: Flask, client: FlaskClient, create_user: Callable[..., Any]
) -> None:
    web, worker = _running_app("web"), _running_app("worker")
    _sweep(web, "running", "Up 2 minutes", [])
    log_in(client, create_user, "viewer")
    page = client.get("/apps").get_data(as_text=True)
    assert 'data-live-url="/apps/live?page=1"' in page
    assert f'id="app-{web.id}-status"' in page and f'id="app-{worker.id}-status"' in page

    response = client.get("/apps/live?page=1", buffered=False)
    pieces = iter(response.response)
    first = _next_event(pieces, "parts")["parts"]
    assert set(first) == {f"app-{web.id}-status", f"app-{worker.id}-status"}
    assert "state-running" in first[f"app-{web.id}-status"]

    _sweep(web, "restarting", "Restarting (1) 2 seconds ago", [])
    changed = _next_event(pieces, "parts")["parts"]
    response.close()
    assert "state-restarting" in changed[f"app-{web.id}-status"]


def test_the_hosts_list_and_the_dashboard_follow_host_status_and_keep_alive(
    app: Flask, client: FlaskClient, create_user: Callable[..., Any]
) -> None:
    app.config["SPECTR_SSE_HEARTBEAT_SECONDS"] = 1
    node = ensure_local_host()
    record_probes([Probe(node.id, True, True, local=True)])
    log_in(client, create_user, "viewer")
    page = client.get("/hosts?status=ready").get_data(as_text=True)
    live_url = html.unescape(re.search(r'data-live-url="(/hosts/live\?[^"]*)"', page).group(1))
    # the stream reads the same listing as the page: filters, sort, order and page
    assert parse_qs(urlsplit(live_url).query) == {
        "status": ["ready"],
        "sort": ["name"],
        "order": ["asc"],
        "page": ["1"],
    }
    assert f'id="host-{node.id}-status"' in page

    response = client.get("/hosts/live?page=1", buffered=False)
    pieces = iter(response.response)
    first = _next_event(pieces, "parts")
    assert "state-ready" in first["parts"][f"host-{node.id}-status"]
    # the rows too, keyed by host id: a host added or deleted comes and goes without a reload
    [(key, row)] = first["rows"]["host-rows"]
    assert key == str(node.id) and f'data-key="{node.id}"' in row and "spectr-node" in row
    text = ""
    while ": heartbeat" not in text:  # nothing changed: the stream says it is alive
        text += next(pieces).decode()
    db.session.get_one(Host, node.id).status = "unreachable"
    db.session.commit()
    changed = _next_event(pieces, "parts")["parts"]
    response.close()
    assert "state-unreachable" in changed[f"host-{node.id}-status"]

    home = client.get("/").get_data(as_text=True)
    assert 'data-live-url="/monitoring/overview/live"' in home and "hx-trigger" not in home
    response = client.get("/monitoring/overview/live", buffered=False)
    pieces = iter(response.response)
    overview = _next_event(pieces, "parts")["parts"]["fleet-overview"]
    assert 'data-host="spectr-node"' in overview and "state-unreachable" in overview
    db.session.get_one(Host, node.id).status = "ready"
    db.session.commit()
    again = _next_event(pieces, "parts")["parts"]["fleet-overview"]
    response.close()
    assert "state-ready" in again


def test_live_lists_need_a_signed_in_viewer(app: Flask, client: FlaskClient) -> None:
    for path in ("/apps/live", "/hosts/live", "/monitoring/overview/live"):
        answer = client.get(path)
        assert answer.status_code in (302, 401) and answer.mimetype != "text/event-stream"


def test_the_applications_list_streams_rows_and_sections_as_applications_come_and_go(
    app: Flask, client: FlaskClient, create_user: Callable[..., Any]
) -> None:
    web = _running_app("web")
    node = web.host_id
    log_in(client, create_user, "viewer")
    page = client.get("/apps").get_data(as_text=True)
    assert f'<tbody id="apps-of-{node}" data-live-rows>' in page
    assert f'data-key="{web.id}"' in page

    response = client.get("/apps/live?page=1", buffered=False)
    pieces = iter(response.response)
    try:
        shown = _next_event(pieces, "parts")
        assert [key for key, _ in shown["rows"][f"apps-of-{node}"]] == [str(web.id)]
        assert shown["region"]["id"] == "apps-sections"
        assert f'id="apps-of-{node}"' in shown["region"]["html"]
        worker = _running_app("worker")
        shown = _next_event(pieces, "parts")
        assert [key for key, _ in shown["rows"][f"apps-of-{node}"]] == [str(web.id), str(worker.id)]
        assert f'href="/apps/{worker.id}"' in shown["rows"][f"apps-of-{node}"][1][1]
        db.session.delete(web)
        db.session.delete(worker)
        db.session.commit()
        shown = _next_event(pieces, "parts")
        assert shown["rows"] == {} and 'id="no-apps"' in shown["region"]["html"]
    finally:
        response.close()
