"""The hosts API: add, secrets never returned, validation, filters, import, edit, delete."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from portal.extensions import db
from portal.hosts.models import HostGpu
from portal.hosts.service import get_host

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-test-only\n-----END OPENSSH PRIVATE KEY-----\n"


def add(api: Any, **fields: Any) -> Any:
    body = {"name": "node-1", "address": "10.20.0.1", "ssh_private_key": KEY, **fields}
    return api.post("/api/v1/hosts", json={k: v for k, v in body.items() if v is not None})


def test_add_with_key_stores_it_encrypted_and_never_returns_it(api_as: Any) -> None:
    api = api_as("operator")

    created = add(api, labels={"gpu": "h100"})

    assert created.status_code == 201, created.json
    body = created.json
    assert body["status"] == "new" and body["auth_method"] == "key"
    assert body["ssh_port"] == 22 and body["ssh_user"] == "root"  # the settings' defaults
    assert "BEGIN" not in created.get_data(as_text=True)
    shown = api.get(f"/api/v1/hosts/{body['id']}").get_data(as_text=True)
    assert "BEGIN" not in shown and "ssh_private_key" not in shown
    stored = db.session.execute(text("SELECT ssh_private_key FROM hosts")).scalar_one()
    assert "BEGIN" not in stored  # encrypted at rest
    assert get_host(body["id"]).ssh_private_key == KEY


def test_password_host_and_the_password_never_comes_back(api_as: Any) -> None:
    api = api_as("operator")

    created = add(api, ssh_private_key=None, ssh_password="hunter2-but-longer")
    listed = api.get("/api/v1/hosts")

    assert created.status_code == 201
    assert created.json["auth_method"] == "password"
    assert "hunter2" not in created.get_data(as_text=True) + listed.get_data(as_text=True)
    stored = db.session.execute(text("SELECT ssh_password FROM hosts")).scalar_one()
    assert "hunter2" not in stored


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"address": "not an address!"}, "address"),
        ({"ssh_port": 70000}, "ssh_port"),
        ({"ssh_private_key": "ssh-ed25519 AAAA public key"}, "ssh_private_key"),
        ({"become_method": "pbrun"}, "become_method"),
        ({"name": "-bad"}, "name"),
        ({"labels": {"gpu": 3}}, "labels"),
        ({"ssh_user": "Root Admin"}, "ssh_user"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(api_as: Any, fields: dict, field: str) -> None:
    response = add(api_as("operator"), **fields)

    assert response.status_code == 422
    assert field in response.json["details"]


def test_an_impossible_ipv4_address_is_refused_with_why_and_host_names_pass(api_as: Any) -> None:
    api = api_as("operator")

    refused = add(api, address="256.300.1.1")
    named = add(api, name="node-2", address="gpu-01.lab.internal")
    host_id = named.json["id"]
    moved = api.patch(f"/api/v1/hosts/{host_id}", json={"address": "10.0.0.256"})

    assert refused.status_code == moved.status_code == 422
    assert refused.json["details"]["address"] == [
        "256.300.1.1 is not an IPv4 address: four numbers from 0 to 255, like 10.0.0.12."
    ]
    assert "10.0.0.256 is not an IPv4 address" in moved.json["details"]["address"][0]
    assert named.status_code == 201


def test_key_and_password_together_or_neither_is_refused(api_as: Any) -> None:
    api = api_as("operator")

    both = add(api, ssh_password="also-a-password")
    neither = add(api, ssh_private_key=None)

    assert both.status_code == neither.status_code == 422
    assert "exactly one" in both.json["message"]


def test_duplicate_name_is_a_409_and_viewers_cannot_add(api_as: Any) -> None:
    api = api_as("operator")
    assert add(api).status_code == 201

    assert add(api, address="10.20.0.2").status_code == 409
    assert add(api_as("viewer"), name="other").status_code == 403


def test_filters_by_status_label_and_gpu_model(api_as: Any) -> None:
    api = api_as("operator")
    h100 = add(api, name="a", labels={"gpu": "h100", "rack": "1"}).json
    add(api, name="b", address="10.20.0.2", labels={"rack": "2"})
    host = get_host(h100["id"])
    host.gpus.append(HostGpu(index=0, model="NVIDIA H100 80GB HBM3", memory_total_mib=81559))
    host.status = "ready"
    db.session.commit()

    def names(query: str) -> list[str]:
        return [item["name"] for item in api.get(f"/api/v1/hosts?{query}").json]

    assert names("gpu_model=h100") == ["a"]
    assert names("gpu_model=a100") == []
    assert names("label=rack") == ["a", "b"]
    assert names("label=rack=2") == ["b"]
    assert names("label=gpu=h100&status=ready") == ["a"]
    assert names("status=new") == ["b"]
    assert api.get("/api/v1/hosts?status=sleeping").status_code == 422


def test_import_an_ini_inventory_with_one_key_for_all(api_as: Any) -> None:
    api = api_as("operator")
    inventory = "[h200]\nn1 ansible_host=10.9.0.1\nn2 ansible_host=10.9.0.2 ansible_port=2222\n"

    response = api.post(
        "/api/v1/hosts/import",
        json={"content": inventory, "ssh_private_key": KEY, "ssh_user": "ops"},
    )

    assert response.status_code == 201, response.json
    assert [(h["name"], h["ssh_port"], h["ssh_user"], h["labels"]) for h in response.json] == [
        ("n1", 22, "ops", {"h200": "true"}),
        ("n2", 2222, "ops", {"h200": "true"}),
    ]


def test_import_is_all_or_nothing_and_names_the_bad_hosts(api_as: Any) -> None:
    api = api_as("operator")
    csv_text = "name,address,password\ngood,10.0.0.1,pw-one\nbad,not valid!,pw-two\n"

    response = api.post("/api/v1/hosts/import", json={"content": csv_text, "format": "csv"})
    unreadable = api.post("/api/v1/hosts/import", json={"content": "[g]\nx ansible_port\n"})

    assert response.status_code == 422
    assert "bad" in response.json["details"] and "good" not in response.json["details"]
    assert api.get("/api/v1/hosts").json == []
    assert unreadable.status_code == 422 and "Line 2" in unreadable.json["message"]


def test_edit_a_new_address_forgets_the_host_key(api_as: Any) -> None:
    api = api_as("operator")
    created = add(api).json
    host = get_host(created["id"])
    host.host_key, host.host_key_fingerprint = "10.20.0.1 ssh-ed25519 AAAA", "SHA256:abc"
    db.session.commit()

    relabelled = api.patch(f"/api/v1/hosts/{host.id}", json={"labels": {"x": "1"}})
    assert relabelled.json["host_key_fingerprint"] == "SHA256:abc"
    moved = api.patch(f"/api/v1/hosts/{host.id}", json={"address": "10.20.0.9"})

    assert moved.status_code == 200
    assert moved.json["address"] == "10.20.0.9" and moved.json["host_key_fingerprint"] is None
    switched = api.patch(f"/api/v1/hosts/{host.id}", json={"ssh_password": "now-a-password"})
    assert switched.json["auth_method"] == "password"
    assert get_host(host.id).ssh_private_key is None


def test_delete_without_cleanup_and_unknown_ids(api_as: Any) -> None:
    api = api_as("operator")
    created = add(api).json

    assert api.delete(f"/api/v1/hosts/{created['id']}").status_code == 204
    assert api.get(f"/api/v1/hosts/{created['id']}").status_code == 404
    assert api.get("/api/v1/hosts/99999999999").status_code == 404
    assert api.post("/api/v1/hosts/bootstrap", json={"host_ids": [424242]}).status_code == 404


def test_bootstrap_of_an_address_nothing_answers_fails_as_unreachable(api_as: Any) -> None:
    # A closed port on 127.0.0.1: the first contact (ssh-keyscan) gets no answer. The test
    # queue runs the operation inline, retries included.
    from tests.hosts.conftest import free_port

    api = api_as("operator")
    created = add(api, address="127.0.0.1", ssh_port=free_port()).json

    started = api.post(f"/api/v1/hosts/{created['id']}/bootstrap", json={})
    operation = api.get(started.headers["Location"]).json

    assert started.status_code == 202
    assert operation["state"] == "failed" and operation["attempts"] == 3
    assert operation["error"].startswith("Host unreachable: 127.0.0.1:")
    assert "Connection refused" in operation["error"]
    assert "gave up after 3 attempts" in operation["error"]
    host = api.get(f"/api/v1/hosts/{created['id']}").json
    assert host["status"] == "unreachable"
    assert host["host_key_fingerprint"] is None


def test_bulk_bootstrap_reports_every_host_in_one_operation(api_as: Any) -> None:
    from tests.hosts.conftest import free_port

    api = api_as("operator")
    first = add(api, name="a", address="127.0.0.1", ssh_port=free_port()).json
    second = add(api, name="b", address="127.0.0.1", ssh_port=free_port()).json

    started = api.post(
        "/api/v1/hosts/bootstrap", json={"host_ids": [first["id"], second["id"]], "forks": 4}
    )
    operation = api.get(started.headers["Location"]).json

    assert started.status_code == 202 and operation["target"] == "hosts"
    assert operation["params"] == {"host_ids": [first["id"], second["id"]], "forks": 4}
    assert operation["state"] == "failed"
    assert operation["error"].startswith("2 of 2 hosts failed. a: Host unreachable")
    assert "; b: Host unreachable" in operation["error"]
    assert {h["status"] for h in api.get("/api/v1/hosts").json} == {"unreachable"}


def test_a_host_busy_with_an_operation_is_not_bootstrapped_twice(api_as: Any) -> None:
    import uuid

    from portal.core.operations.models import Operation

    api = api_as("operator")
    created = add(api).json
    running = Operation(id=str(uuid.uuid4()), kind="bootstrap_hosts", state="running", params={})
    db.session.add(running)
    get_host(created["id"]).last_operation_id = running.id
    db.session.commit()

    again = api.post(f"/api/v1/hosts/{created['id']}/bootstrap", json={})
    many = api.post("/api/v1/hosts/bootstrap", json={"host_ids": [created["id"]]})

    assert again.status_code == many.status_code == 409
    assert running.id in again.json["message"]


@pytest.mark.slow  # runs ansible-playbook
def test_delete_with_cleanup_is_an_operation_and_keeps_a_host_it_cannot_reach(
    api_as: Any,
) -> None:
    from tests.hosts.conftest import free_port

    api = api_as("operator")
    created = add(api, address="127.0.0.1", ssh_port=free_port()).json

    started = api.delete(f"/api/v1/hosts/{created['id']}?cleanup=1")
    operation = api.get(started.headers["Location"]).json

    assert started.status_code == 202 and started.json["kind"] == "delete_host"
    assert operation["state"] == "failed"
    assert operation["error"].startswith("Could not remove the agent from node-1: Host unreachable")
    assert api.get(f"/api/v1/hosts/{created['id']}").status_code == 200  # still known


def test_a_key_pasted_with_crlf_line_ends_is_stored_with_lf(api_as: Any) -> None:
    api = api_as("operator")

    created = add(api, ssh_private_key=KEY.replace("\n", "\r\n")).json

    assert get_host(created["id"]).ssh_private_key == KEY  # OpenSSH refuses CRLF keys
