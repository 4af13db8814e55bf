# Copyright (c) Spectr authors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""Route editing of _proxy_config on spectr_proxy's config document."""

from __future__ import annotations

import json

import pytest

from ansible_collections.spectr.core.plugins.module_utils._proxy_config import (
    ProxyConfigError,
    build_pool,
    build_route,
    dump_config,
    find_pool,
    find_route,
    load_config,
    remove_route,
    upsert_route,
)


def add(config, name, url, pool=None):
    route = build_route(name, ["*"], "/", 60, pool)
    return upsert_route(config, route, build_pool(route["pool"], [{"url": url}]))


def test_empty_text_is_an_empty_config_at_version_0():
    assert load_config("  \n") == {"version": 0, "routes": [], "pools": []}


def test_adding_a_route_writes_route_and_pool_and_bumps_the_version():
    config, changed = add(load_config(""), "a", "http://h:1")

    assert changed is True
    assert config["version"] == 1
    assert config["routes"] == [{"name": "a", "hosts": ["*"], "path_prefix": "/",
                                 "strip_prefix": False, "pool": "a", "timeout_s": 60}]
    assert config["pools"] == [{"name": "a", "replicas": [{"url": "http://h:1"}]}]


def test_adding_the_same_route_again_changes_nothing():
    config, dummy = add(load_config(""), "a", "http://h:1")

    again, changed = add(config, "a", "http://h:1")

    assert changed is False
    assert again is config and again["version"] == 1


def test_changing_an_upstream_replaces_the_pool_in_place():
    config, dummy = add(load_config(""), "a", "http://h:1")
    config, dummy = add(config, "b", "http://h:2")

    config, changed = add(config, "a", "http://h:9")

    assert changed is True and config["version"] == 3
    assert [pool["name"] for pool in config["pools"]] == ["a", "b"]
    assert find_pool(config, "a")["replicas"] == [{"url": "http://h:9"}]


def test_upsert_leaves_the_given_document_unchanged():
    before = load_config('{"version": 4, "routes": [], "pools": []}')
    snapshot = json.loads(json.dumps(before))

    add(before, "a", "http://h:1")

    assert before == snapshot


def test_removing_a_route_keeps_a_pool_another_route_uses():
    config, dummy = add(load_config(""), "a", "http://h:1", pool="shared")
    config, dummy = add(config, "b", "http://h:1", pool="shared")

    config, changed = remove_route(config, "a")

    assert changed is True
    assert [route["name"] for route in config["routes"]] == ["b"]
    assert [pool["name"] for pool in config["pools"]] == ["shared"]
    assert remove_route(config, "a") == (config, False)


def test_removing_the_last_route_of_a_pool_removes_the_pool():
    config, dummy = add(load_config(""), "a", "http://h:1")

    config, changed = remove_route(config, "a")

    assert changed is True
    assert (config["routes"], config["pools"], config["version"]) == ([], [], 2)


def test_other_keys_of_the_document_are_kept():
    text = json.dumps({"version": 7, "models": [{"name": "m"}], "routes": []})

    config, dummy = add(load_config(text), "a", "http://h:1")

    assert config["models"] == [{"name": "m"}]
    assert config["version"] == 8


def test_find_route_and_pool_by_name():
    config, dummy = add(load_config(""), "a", "http://h:1", pool="p")

    assert find_route(config, "a")["pool"] == "p"
    assert find_pool(config, "p")["replicas"] == [{"url": "http://h:1"}]
    assert find_route(config, "missing") is None and find_pool(config, "missing") is None


def test_dump_is_stable_so_unchanged_content_compares_equal():
    one = {"routes": [], "version": 1, "pools": []}
    other = {"pools": [], "version": 1, "routes": []}

    assert dump_config(one) == dump_config(other)
    assert dump_config(one).endswith("}\n")
    assert load_config(dump_config(one)) == one


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "must be a JSON object, found list"),
        ('{"routes": {}}', '"routes" must be a list, found dict'),
        ('{"pools": "x"}', '"pools" must be a list, found str'),
    ],
)
def test_documents_that_cannot_hold_routes_are_refused(text, message):
    with pytest.raises(ProxyConfigError, match=message):
        load_config(text)


@pytest.mark.parametrize("url", ["ftp://h:1", "http://h:1/path", "h:1", "", "http://"])
def test_upstream_urls_the_proxy_would_refuse_are_refused(url):
    with pytest.raises(ProxyConfigError, match="upstream url"):
        build_pool("p", [{"url": url}])


def test_a_pool_needs_an_upstream():
    with pytest.raises(ProxyConfigError, match="at least one upstream"):
        build_pool("p", [])


@pytest.mark.parametrize(
    ("prefix", "timeout", "message"),
    [("v1/", 60, "must start with '/'"), ("/v1/", 0, "greater than 0")],
)
def test_malformed_routes_are_refused(prefix, timeout, message):
    with pytest.raises(ProxyConfigError, match=message):
        build_route("r", ["*"], prefix, timeout)


def test_a_route_without_hosts_matches_every_host():
    assert build_route("r", [], "/", 30)["hosts"] == ["*"]
