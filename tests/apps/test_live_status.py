"""Applications follow their containers without Refresh: the sweep's rows become the app's
status, the app page's live stream sends its new status, ports and actions, published ports
are shown as addresses (links where HTTP), and a log follow with no container says so."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portal.apps.models import CONTAINER, Application
from portal.core.timeutil import utcnow
from portal.engines import ContainerInfo, PortBinding
from portal.extensions import db
from portal.hosts.health import Probe, record_probes
from portal.hosts.service import create_host, ensure_local_host
from tests.apps.helpers import log_in


def _running_app(name: str) -> Application:
    node = ensure_local_host()
    app = Application(name=name, host_id=node.id, kind=CONTAINER, status="running")
    db.session.add(app)
    db.session.commit()
    return app


def _sweep(app: Application, state: str, status: str, ports: list[PortBinding]) -> None:
    seen = ContainerInfo(id=f"id-{app.name}", name=app.name, image="img:1", state=state,
                         labels={}, status=status, ports=ports)  # fmt: skip
    record_probes([Probe(app.host_id, True, True, containers=[seen], local=True)])


def _next_event(pieces: Any, kind: str, timeout: float = 10) -> dict[str, Any]:
    """The data of the next event of this kind in a streamed response."""
    deadline, text = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        text += next(pieces).decode()
        for block in text.split("\n\n")[:-1]:
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
            if fields.get("event") == kind:
                return json.loads(fields["data"])
    raise AssertionError(f"no {kind} event within {timeout} s: {text!r}")


def test_the_app_page_follows_the_sweep_live(
    app: Flask, client: FlaskClient, create_user: Callable[..., Any]
) -> None:
    web = _running_app("web")
    port = PortBinding(8080, "tcp", 18080, "0.0.0.0")
    _sweep(web, "running", "Up 2 minutes", [port, PortBinding(8080, "tcp", 18080, "::")])
    log_in(client, create_user, "operator")

    page = client.get(f"/apps/{web.id}").get_data(as_text=True)
    # bound to every address of the node: shown at the address this page came from, once
    assert '<a href="http://localhost:18080/"' in page and page.count("localhost:18080 →") == 1
    response = client.get(f"/apps/{web.id}/live", buffered=False)
    pieces = iter(response.response)
    first = _next_event(pieces, "parts")
    assert first["status"] == "running" and ">Stop</button>" in first["parts"]["app-actions"]
    assert "localhost:18080 → 8080/tcp" in first["parts"]["app-ports"]

    _sweep(web, "restarting", "Restarting (1) 2 seconds ago", [])
    changed = _next_event(pieces, "parts")
    response.close()

    assert changed["status"] == "restarting"
    assert (
        '<span class="badge state-restarting">restarting</span>' in changed["parts"]["app-status"]
    )
    assert "none published" in changed["parts"]["app-ports"]
    db.session.expire_all()
    assert db.session.get_one(Application, web.id).status == "restarting"


def test_a_page_of_many_hosts_without_applications_names_a_few_and_counts_the_rest(
    app: Flask, client: FlaskClient, create_user: Callable[..., Any]
) -> None:
    log_in(client, create_user, "operator")
    client.get("/apps")  # records the Spectr node
    for n in range(20):
        create_host({"name": f"idle-{n:02d}", "address": "10.99.2.1", "ssh_password": "pw"})
    db.session.commit()

    page = client.get("/apps").get_data(as_text=True)
    listed = page[page.index('id="hosts-without-apps"') :].split("</p>")[0]

    assert listed.count("/hosts/") == 12  # each named host links to its page
    assert "and 9 more hosts of this page" in listed and 'href="/hosts"' in listed


def test_the_apps_page_shows_ports_and_no_empty_host_cards(
    app: Flask, client: FlaskClient, create_user: Callable[..., Any]
) -> None:
    log_in(client, create_user, "operator")
    empty = client.get("/apps").get_data(as_text=True)
    assert "No applications yet." in empty and 'class="card host-apps"' not in empty
    assert 'id="hosts-without-apps"' in empty and "spectr-node" in empty

    web = _running_app("db")
    _sweep(web, "running", "Up 1 second", [PortBinding(5432, "tcp", 15432, "127.0.0.1")])
    page = client.get("/apps").get_data(as_text=True)
    assert page.count('class="card host-apps"') == 1 and "No applications yet." not in page
    # not a port that speaks HTTP: shown, not linked
    assert '<span class="port">127.0.0.1:15432 → 5432/tcp</span>' in page


@pytest.mark.slow
@pytest.mark.docker  # the node's engine is asked for the container
def test_following_the_log_of_an_app_without_a_container_says_so(
    app: Flask, api_as: Callable[[str], Any]
) -> None:
    waiting = _running_app("spectr-test-no-such-container")
    viewer = api_as("viewer")

    followed = viewer.get(f"/api/v1/apps/{waiting.id}/logs?follow=1")

    assert followed.status_code == 200 and followed.mimetype == "text/event-stream"
    body = followed.get_data(as_text=True)
    assert 'event: end\ndata: {"reason": "not_started"' in body
    assert "No container yet; waiting for one to start." in body
    assert viewer.get(f"/api/v1/apps/{waiting.id}/logs").status_code == 409  # a read, not a follow
    bad = viewer.get(f"/api/v1/apps/{waiting.id}/logs?follow=1&since=soon")
    assert bad.status_code == 422 and "since" in bad.get_json()["details"]


def test_each_sweep_wins_over_an_older_reading_even_when_its_rows_did_not_change(
    app: Flask,
) -> None:
    web = _running_app("loop")
    _sweep(web, "restarting", "Restarting (1) 1 second ago", [])
    assert web.status == "restarting"
    # A deploy's refresh then caught it between two crashes; the rows stay as they were.
    web.status, web.status_checked_at = "running", utcnow()
    db.session.commit()

    _sweep(web, "restarting", "Restarting (1) 3 seconds ago", [])

    assert web.status == "restarting"
