"""Unit tests of proxy_route: config editing, diffs, check mode and argument handling."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from ansible_collections.spectr.core.plugins.module_utils._proxy_config import (
    ProxyConfigError,
    build_pool,
    build_route,
    load_config,
    remove_route,
    upsert_route,
)
from ansible_collections.spectr.core.plugins.modules import proxy_route
from tests.collection.module_runner import run_module

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "proxy" / "config.schema.json"
ROUTE_ARGS = {
    "name": "llama-chat",
    "hosts": ["chat.example.com"],
    "path_prefix": "/v1/",
    "upstreams": [{"url": "http://10.0.0.5:8000"}, {"url": "http://10.0.0.6:8000"}],
    "timeout_s": 300,
}


def _add(config: dict, name: str, url: str, pool: str | None = None) -> tuple[dict, bool]:
    route = build_route(name, ["*"], "/", 60, pool)
    return upsert_route(config, route, build_pool(route["pool"], [{"url": url}]))


def test_adding_a_route_writes_route_and_pool_and_bumps_version() -> None:
    config, changed = _add(load_config(""), "a", "http://h:1")

    assert changed
    assert config["version"] == 1
    assert config["routes"][0]["pool"] == "a"
    assert config["pools"] == [{"name": "a", "replicas": [{"url": "http://h:1"}]}]


def test_adding_the_same_route_again_changes_nothing() -> None:
    config, _ = _add(load_config(""), "a", "http://h:1")

    again, changed = _add(config, "a", "http://h:1")

    assert not changed
    assert again["version"] == 1


def test_changing_an_upstream_replaces_the_pool_in_place() -> None:
    config, _ = _add(load_config(""), "a", "http://h:1")
    config, _ = _add(config, "b", "http://h:2")

    config, changed = _add(config, "a", "http://h:9")

    assert changed
    assert [pool["name"] for pool in config["pools"]] == ["a", "b"]
    assert config["pools"][0]["replicas"] == [{"url": "http://h:9"}]


def test_removing_a_route_keeps_a_pool_another_route_uses() -> None:
    config, _ = _add(load_config(""), "a", "http://h:1", pool="shared")
    config, _ = _add(config, "b", "http://h:1", pool="shared")

    config, changed = remove_route(config, "a")

    assert changed
    assert [route["name"] for route in config["routes"]] == ["b"]
    assert [pool["name"] for pool in config["pools"]] == ["shared"]
    assert remove_route(config, "a") == (config, False)


def test_other_keys_of_the_document_are_kept() -> None:
    text = json.dumps({"version": 7, "models": [{"name": "m"}], "routes": []})

    config, _ = _add(load_config(text), "a", "http://h:1")

    assert config["models"] == [{"name": "m"}]
    assert config["version"] == 8


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"routes": {}}', '"routes" must be a list'),
    ],
)
def test_load_config_rejects_documents_that_cannot_hold_routes(text: str, message: str) -> None:
    with pytest.raises(ProxyConfigError, match=message):
        load_config(text)


@pytest.mark.parametrize("url", ["ftp://h:1", "http://h:1/path", "h:1"])
def test_build_pool_rejects_urls_the_proxy_would_refuse(url: str) -> None:
    with pytest.raises(ProxyConfigError, match="upstream url"):
        build_pool("p", [{"url": url}])


def test_written_config_satisfies_the_proxy_schema(tmp_path: Path) -> None:
    path = tmp_path / "config.json"

    result = run_module(proxy_route, {**ROUTE_ARGS, "path": str(path)})

    assert result["changed"] is True
    document = json.loads(path.read_text())
    jsonschema.validate(document, json.loads(SCHEMA_PATH.read_text()))
    assert document["routes"][0]["hosts"] == ["chat.example.com"]


def test_check_mode_reports_the_diff_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "config.json"

    result = run_module(proxy_route, {**ROUTE_ARGS, "path": str(path)}, check_mode=True, diff=True)

    assert result["changed"] is True
    assert not path.exists()
    assert result["diff"]["before"] == ""
    assert (
        json.loads(result["diff"]["after"])["pools"][0]["replicas"][1]["url"]
        == "http://10.0.0.6:8000"
    )


def test_second_run_is_not_changed_and_removal_is_changed_once(tmp_path: Path) -> None:
    args = {**ROUTE_ARGS, "path": str(tmp_path / "config.json")}
    run_module(proxy_route, args)

    assert run_module(proxy_route, args)["changed"] is False
    removal = {"path": args["path"], "name": "llama-chat", "state": "absent"}
    assert run_module(proxy_route, removal)["changed"] is True
    assert run_module(proxy_route, removal)["changed"] is False


def test_present_without_upstreams_fails_naming_the_option(tmp_path: Path) -> None:
    result = run_module(proxy_route, {"path": str(tmp_path / "c.json"), "name": "x"})

    assert result["failed"] is True
    assert "upstreams" in result["msg"]


def test_a_broken_file_fails_with_the_parser_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{not json")

    result = run_module(proxy_route, {**ROUTE_ARGS, "path": str(path)})

    assert result["failed"] is True
    assert "not valid JSON" in result["msg"] and str(path) in result["msg"]
    assert path.read_text() == "{not json"
