# Copyright (c) Spectr authors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
#
# This module_utils is PRIVATE to spectr.core: its API may change without notice.
"""Add and remove routes in a spectr_proxy config document (proxy/config.schema.json).

A route names a pool of upstream replicas; this module keeps one pool per route it writes
(the pool is named after the route unless told otherwise). Every change bumps "version",
the document's monotonic revision that the proxy logs when it applies a change.
"""

from __future__ import annotations

import json
import re

UPSTREAM_URL = re.compile(r"^https?://[^/\s]+/?$")


class ProxyConfigError(ValueError):
    """The config document cannot hold routes, or the route is malformed."""


def load_config(text):
    """Parse a config document; empty text is an empty config."""
    if not text.strip():
        return {"version": 0, "routes": [], "pools": []}
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ProxyConfigError("config is not valid JSON: %s" % error)
    if not isinstance(config, dict):
        raise ProxyConfigError("config must be a JSON object, found %s" % type(config).__name__)
    for key in ("routes", "pools"):
        config.setdefault(key, [])
        if not isinstance(config[key], list):
            raise ProxyConfigError('"%s" must be a list, found %s' % (key, type(config[key]).__name__))
    config.setdefault("version", 0)
    return config


def dump_config(config):
    """Serialise a config the same way every time, so unchanged content compares equal."""
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def build_route(name, hosts, path_prefix, timeout_s, pool=None, strip_prefix=False):
    """Return a route in the shape spectr_proxy reads."""
    if not path_prefix.startswith("/"):
        raise ProxyConfigError("path_prefix must start with '/': %r" % path_prefix)
    if timeout_s <= 0:
        raise ProxyConfigError("timeout_s must be greater than 0: %r" % timeout_s)
    return {
        "name": name,
        "hosts": list(hosts) or ["*"],
        "path_prefix": path_prefix,
        "strip_prefix": bool(strip_prefix),
        "pool": pool or name,
        "timeout_s": timeout_s,
    }


def build_pool(name, upstreams):
    """Return a pool of replicas from a list of {"url": ...}."""
    if not upstreams:
        raise ProxyConfigError("a route needs at least one upstream")
    for upstream in upstreams:
        url = upstream.get("url") or ""
        if not UPSTREAM_URL.match(url):
            raise ProxyConfigError(
                "upstream url must be http(s)://host[:port] without a path: %r" % url
            )
    return {"name": name, "replicas": [{"url": upstream["url"]} for upstream in upstreams]}


def _index_of(items, name):
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == name:
            return index
    return None


def _upsert(items, item):
    items = list(items)
    index = _index_of(items, item["name"])
    if index is None:
        items.append(item)
    else:
        items[index] = item
    return items


def _bump(config):
    config["version"] = int(config.get("version") or 0) + 1
    return config


def upsert_route(config, route, pool):
    """Put the route and its pool in place of those with their names; return (config, changed)."""
    routes = _upsert(config["routes"], route)
    pools = _upsert(config["pools"], pool)
    if routes == config["routes"] and pools == config["pools"]:
        return config, False
    return _bump(dict(config, routes=routes, pools=pools)), True


def remove_route(config, name):
    """Drop the route and its pool when no other route uses it; return (config, changed)."""
    index = _index_of(config["routes"], name)
    if index is None:
        return config, False
    routes = list(config["routes"])
    removed = routes.pop(index)
    pools = list(config["pools"])
    pool_name = removed.get("pool")
    if not any(route.get("pool") == pool_name for route in routes):
        pools = [pool for pool in pools if pool.get("name") != pool_name]
    return _bump(dict(config, routes=routes, pools=pools)), True


def find_route(config, name):
    """Return the route with this name, or None."""
    index = _index_of(config["routes"], name)
    return None if index is None else config["routes"][index]


def find_pool(config, name):
    """Return the pool with this name, or None."""
    index = _index_of(config["pools"], name)
    return None if index is None else config["pools"][index]
