"""Prometheus HTTP service discovery: what /api/v1/monitoring/targets lists, and for whom."""

from __future__ import annotations

from flask import Flask

from portal.extensions import db
from portal.hosts.models import READY, UNREACHABLE, Host, HostGpu
from portal.hosts.service import ensure_local_host
from portal.monitoring.discovery import proxy_metrics_address


def add_agent_host(name: str, port: int, status: str = READY, models: tuple = ()) -> Host:
    host = Host(
        name=name,
        address="10.1.0.9",
        status=status,
        agent_url=f"https://10.1.0.9:{port}",
        labels={"role": "inference"},
    )
    host.gpus = [HostGpu(index=i, model=m, memory_total_mib=80000) for i, m in enumerate(models)]
    db.session.add(host)
    db.session.commit()
    return host


def by_role(groups: list[dict], role: str) -> list[dict]:
    return [g for g in groups if g["labels"]["role"] == role]


def test_targets_list_portal_and_every_agent_with_labels(app: Flask, api_as) -> None:
    ensure_local_host()  # the Spectr node has no agent: nothing to scrape there
    add_agent_host("gpu-a", 7443, models=("H200", "H200", "A100"))
    add_agent_host("gpu-b", 7444, status=UNREACHABLE)

    groups = api_as("viewer").get("/api/v1/monitoring/targets").get_json()

    portal = by_role(groups, "portal")
    assert [g["targets"] for g in portal] == [["localhost"]]
    agents = {g["labels"]["host"]: g for g in by_role(groups, "agent")}
    assert set(agents) == {"gpu-a", "gpu-b"}
    assert agents["gpu-a"]["targets"] == ["10.1.0.9:7443"]
    assert agents["gpu-a"]["labels"]["gpu_model"] == "A100,H200"
    assert agents["gpu-a"]["labels"]["__scheme__"] == "https"
    assert agents["gpu-a"]["labels"]["host_role"] == "inference"
    # An unreachable host stays a target, so Prometheus' up == 0 alert can fire.
    assert agents["gpu-b"]["labels"]["gpu_model"] == "none"
    assert agents["gpu-b"]["labels"]["host_status"] == UNREACHABLE


def test_targets_filter_by_role_and_reject_unknown_roles(app: Flask, api_as) -> None:
    add_agent_host("gpu-a", 7443)
    viewer = api_as("viewer")

    only_agents = viewer.get("/api/v1/monitoring/targets?role=agent").get_json()
    bad = viewer.get("/api/v1/monitoring/targets?role=database")

    assert {g["labels"]["role"] for g in only_agents} == {"agent"}
    assert bad.status_code == 422
    assert "role" in bad.get_json()["details"]


def test_targets_need_a_login(client) -> None:
    assert client.get("/api/v1/monitoring/targets").status_code == 401


def test_a_proxy_fetching_its_config_becomes_a_target(app: Flask, api_as) -> None:
    operator = api_as("operator")

    fetched = operator.get(
        "/api/v1/proxy/config",
        headers={"X-Spectr-Proxy-Metrics": "0.0.0.0:9191"},
        environ_base={"REMOTE_ADDR": "10.2.0.7"},
    )
    operator.get("/api/v1/proxy/config", headers={"X-Spectr-Proxy-Metrics": "not an address"})
    refused = api_as("viewer").get(
        "/api/v1/proxy/config", headers={"X-Spectr-Proxy-Metrics": "10.9.9.9:9000"}
    )
    groups = operator.get("/api/v1/monitoring/targets?role=proxy").get_json()

    assert fetched.status_code == 200 and refused.status_code == 403
    assert [g["targets"] for g in groups] == [["10.2.0.7:9191"]]
    assert groups[0]["labels"]["__scheme__"] == "http"


def test_stale_proxies_leave_the_targets(app: Flask, api_as) -> None:
    app.config["SPECTR_MONITORING_PROXY_STALE_SECONDS"] = 0
    operator = api_as("operator")
    operator.get("/api/v1/proxy/config", headers={"X-Spectr-Proxy-Metrics": "127.0.0.1:9191"})

    groups = operator.get("/api/v1/monitoring/targets?role=proxy").get_json()

    assert groups == []


def test_proxy_metrics_address_parsing() -> None:
    assert proxy_metrics_address("0.0.0.0:9100", "10.0.0.1") == "10.0.0.1:9100"
    assert proxy_metrics_address("[::]:9100", "fd00::5") == "[fd00::5]:9100"
    assert proxy_metrics_address("proxy-1.lan:9100", "10.0.0.1") == "proxy-1.lan:9100"
    assert proxy_metrics_address("127.0.0.1:0", None) is None
    assert proxy_metrics_address("127.0.0.1:99999", None) is None
    assert proxy_metrics_address("http://x:1/", None) is None


def test_agent_groups_built_by_the_database_match_the_rows(any_db_app: Flask) -> None:
    """On Postgres the groups come as JSON from the database: the same as built from rows."""
    from portal.monitoring.discovery import _agent_groups, scrape_targets

    add_agent_host("gpu-a", 7443, models=("H200", "H200", "A100"))
    plain = add_agent_host("gpu-b", 7444, status=UNREACHABLE)
    plain.labels = {}
    add_agent_host("gpu-c", 7445, models=("L40S",))
    db.session.commit()

    listed = scrape_targets("agent", "portal:5000", "http")

    assert listed == _agent_groups()
    assert [g["labels"]["host"] for g in listed] == ["gpu-a", "gpu-b", "gpu-c"]
    assert (
        "host_role" not in listed[1]["labels"] and listed[0]["labels"]["host_role"] == "inference"
    )
    assert listed[2] == {
        "targets": ["10.1.0.9:7445"],
        "labels": {"role": "agent", "__scheme__": "https", "host": "gpu-c", "gpu_model": "L40S",
                   "host_status": "ready", "host_role": "inference"},
    }  # fmt: skip
