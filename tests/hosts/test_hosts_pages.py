"""The host pages through a logged-in browser session: list, add, import, edit, delete."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from portal.extensions import db
from portal.hosts.models import HostGpu
from portal.hosts.service import get_host, hosts_query
from tests.portal.conftest import PASSWORD

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-page-test\n-----END OPENSSH PRIVATE KEY-----\n"


def ssh_hosts() -> list[Any]:
    """The hosts added by the test (the Spectr node is listed from the first visit)."""
    return [h for h in db.session.scalars(hosts_query()) if not h.is_local]


def log_in(client: FlaskClient, create_user: Any, role: str) -> str:
    user = create_user(role)
    client.post("/login", data={"username": user.username, "password": PASSWORD})
    html = client.get("/hosts").get_data(as_text=True)
    return html.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


def test_add_a_host_from_the_form_then_see_it_listed_and_shown(
    client: FlaskClient, create_user: Any
) -> None:
    csrf = log_in(client, create_user, "operator")

    added = client.post(
        "/hosts/new",
        data={"csrf_token": csrf, "name": "gpu-7", "address": "10.3.0.7", "ssh_port": "2222",
              "ssh_user": "ops", "become_method": "sudo", "labels": "gpu=h100, rack=4",
              "ssh_private_key": KEY},
    )  # fmt: skip

    assert added.status_code == 302
    detail = client.get(added.headers["Location"]).get_data(as_text=True)
    assert "gpu-7" in detail and "ops@10.3.0.7:2222" in detail
    assert "not recorded yet" in detail and "BEGIN" not in detail
    listing = client.get("/hosts?label=gpu=h100").get_data(as_text=True)
    assert "gpu-7" in listing
    assert "gpu-7" not in client.get("/hosts?label=gpu=a100").get_data(as_text=True)


def test_a_bad_form_is_shown_again_with_the_reason(client: FlaskClient, create_user: Any) -> None:
    csrf = log_in(client, create_user, "operator")

    page = client.post(
        "/hosts/new",
        data={"csrf_token": csrf, "name": "x", "address": "not valid!", "ssh_password": "pw"},
    )

    assert page.status_code == 422
    assert "Give a host name or an IP address." in page.get_data(as_text=True)
    assert ssh_hosts() == []


def test_import_edit_and_delete_from_the_pages(client: FlaskClient, create_user: Any) -> None:
    csrf = log_in(client, create_user, "operator")
    csv_text = "name,address,labels\nn1,10.4.0.1,zone=a\nn2,10.4.0.2,zone=b\n"

    client.post(
        "/hosts/import", data={"csrf_token": csrf, "content": csv_text, "ssh_password": "pw"}
    )
    n1, n2 = ssh_hosts()
    n1.gpus.append(HostGpu(index=0, model="NVIDIA H200", memory_total_mib=143771))
    db.session.commit()
    edited = client.post(
        f"/hosts/{n1.id}/edit",
        data={"csrf_token": csrf, "name": "n1", "address": "10.4.0.11", "labels": "zone=c"},
    )
    deleted = client.post(f"/hosts/{n2.id}/delete", data={"csrf_token": csrf})

    assert edited.status_code == 302 and deleted.status_code == 302
    assert get_host(n1.id).address == "10.4.0.11" and get_host(n1.id).labels == {"zone": "c"}
    assert get_host(n1.id).ssh_password == "pw"  # an empty credential field keeps the secret
    listing = client.get("/hosts?gpu_model=h200").get_data(as_text=True)
    assert "n1" in listing and "NVIDIA H200" in listing
    assert [h.name for h in ssh_hosts()] == ["n1"]


def test_viewers_see_hosts_but_cannot_change_them(client: FlaskClient, create_user: Any) -> None:
    csrf = log_in(client, create_user, "viewer")

    refused = client.post(
        "/hosts/new", data={"csrf_token": csrf, "name": "v", "address": "10.0.0.1"}
    )

    assert refused.status_code == 403
    assert client.get("/hosts").status_code == 200


def test_the_host_page_shows_the_last_operation_log_for_live_following(
    client: FlaskClient, create_user: Any
) -> None:
    from portal.core.operations import service as operations
    from portal.hosts.service import create_host

    log_in(client, create_user, "viewer")
    host = create_host({"name": "n9", "address": "10.5.0.9", "ssh_password": "pw"})
    operation, _ = operations.create_operation("noop", {}, target=f"host:{host.id}")
    operations.append_log(operation.id, "TASK [Install the base packages]")
    host.last_operation_id = operation.id
    db.session.commit()

    page = client.get(f"/hosts/{host.id}").get_data(as_text=True)

    assert 'id="operation"' in page and f"/api/v1/operations/{operation.id}/log" in page
    assert "TASK [Install the base packages]" in page


def test_the_spectr_node_is_listed_from_the_first_visit_as_reached_through_docker(
    client: FlaskClient, create_user: Any
) -> None:
    # Issue 13, finding 14: it appeared only after Applications was opened, as root@127.0.0.1:22.
    log_in(client, create_user, "viewer")  # opens /hosts first, nothing else

    listing = client.get("/hosts").get_data(as_text=True)
    [node] = [h for h in db.session.scalars(hosts_query()) if h.is_local]
    row = listing.split(f'href="/hosts/{node.id}"', 1)[1].split("</tr>", 1)[0]
    assert "this machine's Docker socket" in row and "root@" not in row
    detail = client.get(f"/hosts/{node.id}").get_data(as_text=True)
    assert "through this machine's Docker socket" in detail
    assert "SSH host key" not in detail and "root@127.0.0.1" not in detail
