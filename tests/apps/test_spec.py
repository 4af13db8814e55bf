"""A revision's spec turned into the spectr.core.app role's variables."""

from __future__ import annotations

from portal.apps.spec import AppInputSchema, port_argument, role_variables


def test_container_spec_becomes_the_role_variables() -> None:
    body = AppInputSchema().load({
        "name": "llm", "host_id": 1,
        "container": {
            "image": "vllm/vllm-openai:v0.8.5", "command": ["--model", "m"], "env": {"A": "1"},
            "ports": [{"container_port": 8000, "host_port": 18000}, {"container_port": 9000, "protocol": "udp"}],
            "gpus": [0, 2], "cpus": 4, "memory": "32g",
            "healthcheck": {"test": ["CMD", "curl", "-f", "http://127.0.0.1:8000/health"]},
        },
    })  # fmt: skip
    variables = role_variables("llm", "container", 3, body["container"], {"HF_TOKEN": "secret"})
    assert variables["app_revision"] == "3" and variables["app_kind"] == "container"
    assert variables["app_env"] == {"A": "1", "HF_TOKEN": "secret"}
    assert variables["app_ports"] == ["127.0.0.1:18000:8000", "127.0.0.1::9000/udp"]
    assert variables["app_gpus"] == ["0", "2"]  # device ids for the role's device_requests
    assert variables["app_cpus"] == 4 and variables["app_memory"] == "32g"
    assert variables["app_wait_healthy"] is True
    assert variables["app_healthcheck"]["interval"] == "10s"
    assert variables["app_restart_policy"] == "unless-stopped"


def test_no_gpus_and_no_healthcheck_leave_the_role_defaults() -> None:
    spec = AppInputSchema().load({"name": "x", "host_id": 1, "container": {"image": "a:1"}})[
        "container"
    ]
    variables = role_variables("x", "container", 1, spec, {})
    assert variables["app_gpus"] == "" and variables["app_wait_healthy"] is False
    assert variables["app_cpus"] == 0 and variables["app_memory"] == ""


def test_compose_spec_passes_the_document() -> None:
    document = {"services": {"web": {"image": "nginx:1"}}}
    variables = role_variables("proj", "compose", 2, {"compose": document}, {})
    assert variables == {"app_name": "proj", "app_revision": "2", "app_kind": "compose",
                         "app_compose": document, "app_pull": "missing"}  # fmt: skip


def test_port_argument_binds_loopback_by_default() -> None:
    assert (
        port_argument({"container_port": 80, "host_port": 8080, "host_ip": "127.0.0.1"})
        == "127.0.0.1:8080:80"
    )
