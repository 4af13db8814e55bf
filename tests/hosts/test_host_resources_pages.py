"""The pages of a host's Docker resources through a signed-in session, on the real engine:
what viewers and operators see, the form actions, and what a host without agent shows."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from portal.core.audit import AuditEvent
from portal.extensions import db
from portal.hosts.models import Host
from portal.hosts.service import ensure_local_host
from tests.apps.test_live_status import _next_event
from tests.hosts.test_hosts_pages import log_in
from tests.support.docker_objects import Made

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def test_a_viewer_sees_the_lists_without_any_action(
    client: FlaskClient, create_user: Any, made: Made
) -> None:
    container = made.container("viewed", labels={"spectr.managed-by": "spectr.core"})
    volume, network = made.volume("viewed"), made.network("viewed")
    csrf = log_in(client, create_user, "viewer")
    node = ensure_local_host().id

    listing = client.get(f"/hosts/{node}/containers?q={made.run}").get_data(as_text=True)
    assert container.name in listing and 'aria-current="page">Containers' in listing
    assert 'name="container_id"' not in listing and "Remove</button>" not in listing
    assert "deployed by Spectr" in listing
    empty = client.get(f"/hosts/{node}/containers?q=nothing-{made.run}").get_data(as_text=True)
    assert "No containers match these filters" in empty
    assert volume in client.get(f"/hosts/{node}/volumes").get_data(as_text=True)
    networks = client.get(f"/hosts/{node}/networks").get_data(as_text=True)
    assert network in networks and "built in" in networks and "Remove</button>" not in networks
    assert "Prune" not in client.get(f"/hosts/{node}/images").get_data(as_text=True)
    page = client.get(f"/hosts/{node}/containers/{container.name}").get_data(as_text=True)
    assert "Live stats" in page and 'id="container-actions"' not in page
    refused = client.post(
        f"/hosts/{node}/volumes/remove", data={"csrf_token": csrf, "name": volume}
    )
    assert refused.status_code == 403
    assert volume in [v.name for v in made.client.volumes.list()]


def test_an_operator_acts_from_the_pages_and_reads_why_a_removal_was_refused(
    client: FlaskClient, create_user: Any, made: Made
) -> None:
    used, spare = made.volume("used"), made.volume("spare")
    container = made.container("acted", volumes={used: {"bind": "/data", "mode": "rw"}})
    csrf = log_in(client, create_user, "operator")
    node = ensure_local_host().id

    stopped = client.post(f"/hosts/{node}/containers/actions", follow_redirects=True, data={
        "csrf_token": csrf, "action": "stop", "container_id": container.id})  # fmt: skip
    assert f"Stopped 1 container(s): {container.name}." in stopped.get_data(as_text=True)
    container.reload()
    assert container.status == "exited"
    page = client.get(f"/hosts/{node}/containers/{container.name}").get_data(as_text=True)
    assert 'value="start"' in page and 'value="stop"' not in page and "is exited" in page

    refused = client.post(f"/hosts/{node}/volumes/remove", follow_redirects=True,
                          data={"csrf_token": csrf, "name": used}).get_data(as_text=True)  # fmt: skip
    assert f"Volume &#39;{used}&#39; is in use by {container.name}" in refused
    removed = client.post(f"/hosts/{node}/volumes/remove", follow_redirects=True,
                          data={"csrf_token": csrf, "name": spare}).get_data(as_text=True)  # fmt: skip
    assert f"Volume {spare} removed." in removed
    outcomes = [e.outcome for e in db.session.query(AuditEvent).filter_by(
        action="host.volume.remove")]  # fmt: skip
    assert outcomes == ["failed", "success"]
    nothing = client.post(f"/hosts/{node}/containers/actions", follow_redirects=True,
                          data={"csrf_token": csrf, "action": "stop"})  # fmt: skip
    assert "Choose one or more containers" in nothing.get_data(as_text=True)


def test_a_host_without_agent_says_to_bootstrap_it(client: FlaskClient, create_user: Any) -> None:
    host = Host(name="not-yet", address="10.99.0.9", ssh_user="root")
    db.session.add(host)
    db.session.commit()
    log_in(client, create_user, "viewer")
    for kind in ("containers", "images", "volumes", "networks"):
        answer = client.get(f"/hosts/{host.id}/{kind}")
        assert answer.status_code == 200
        text = answer.get_data(as_text=True)
        assert "has no agent yet; bootstrap it first" in text and "Bootstrap the host" in text


def test_engine_times_are_shown_to_the_second(app: Any) -> None:
    from portal.hosts.resource_views import engine_time

    assert ">2026-12-05 20:21:16<" in engine_time("2026-12-05T20:21:16.123456789Z")
    assert engine_time("0001-01-01T00:00:00Z") == "—" and engine_time(None) == "—"


def test_the_containers_list_streams_its_rows_as_containers_come_and_go(
    app: Any, client: FlaskClient, create_user: Any, made: Made
) -> None:
    app.config["SPECTR_SSE_HEARTBEAT_SECONDS"] = 1
    first = made.container("b-live")
    log_in(client, create_user, "viewer")
    node = ensure_local_host().id
    page = client.get(f"/hosts/{node}/containers?q={made.run}").get_data(as_text=True)
    live_url = f"/hosts/{node}/containers/live?q={made.run}"
    assert f'data-live-url="{live_url}"' in page and f'data-key="{first.id}"' in page

    response = client.get(live_url, buffered=False)
    pieces = iter(response.response)
    try:
        shown = _next_event(pieces, "parts")
        assert [key for key, _ in shown["rows"]["container-rows"]] == [first.id]
        assert "1 container(s) shown" in shown["parts"]["containers-count"]
        assert 'name="container_id"' not in shown["rows"]["container-rows"][0][1]  # a viewer's
        second = made.container("a-live")
        shown = _next_event(pieces, "parts")
        assert [key for key, _ in shown["rows"]["container-rows"]] == [second.id, first.id]
        first.remove(force=True)
        shown = _next_event(pieces, "parts")
        assert [key for key, _ in shown["rows"]["container-rows"]] == [second.id]
    finally:
        response.close()
    assert client.get(f"/hosts/{node + 1000}/containers/live").status_code == 404
