# Copyright (c) Spectr authors
# Apache License 2.0
#
# This module_utils is PRIVATE to spectr.core: its API may change without notice.
"""Add and remove routes in a spectr_proxy JSON config document (key "routes")."""

from __future__ import annotations

import json


class ProxyConfigError(ValueError):
    """The config document cannot hold routes."""


def load_config(text):
    """Parse a config document; empty text is an empty config."""
    if not text.strip():
        return {"routes": []}
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ProxyConfigError("config is not valid JSON: %s" % error)
    if not isinstance(config, dict):
        raise ProxyConfigError("config must be a JSON object, found %s" % type(config).__name__)
    routes = config.setdefault("routes", [])
    if not isinstance(routes, list):
        raise ProxyConfigError('"routes" must be a list, found %s' % type(routes).__name__)
    return config


def dump_config(config):
    """Serialise a config the same way every time, so unchanged content compares equal."""
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def build_route(name, hosts, path_prefix, upstreams, timeout_s):
    """Return a route in the shape spectr_proxy reads."""
    if not upstreams:
        raise ProxyConfigError("a route needs at least one upstream")
    for upstream in upstreams:
        url = upstream.get("url") or ""
        if not url.startswith(("http://", "https://")):
            raise ProxyConfigError("upstream url must start with http:// or https://: %r" % url)
    if not path_prefix.startswith("/"):
        raise ProxyConfigError("path_prefix must start with '/': %r" % path_prefix)
    return {
        "name": name,
        "hosts": list(hosts or []),
        "path_prefix": path_prefix,
        "upstreams": [{"url": upstream["url"]} for upstream in upstreams],
        "timeout_s": timeout_s,
    }


def _index_of(routes, name):
    for index, route in enumerate(routes):
        if isinstance(route, dict) and route.get("name") == name:
            return index
    return None


def upsert_route(config, route):
    """Put a route in place of the one with its name, or append it; return (config, changed)."""
    routes = list(config["routes"])
    index = _index_of(routes, route["name"])
    if index is None:
        routes.append(route)
    elif routes[index] == route:
        return config, False
    else:
        routes[index] = route
    return dict(config, routes=routes), True


def remove_route(config, name):
    """Drop the route with this name; return (config, changed)."""
    routes = list(config["routes"])
    index = _index_of(routes, name)
    if index is None:
        return config, False
    del routes[index]
    return dict(config, routes=routes), True


def find_route(config, name):
    """Return the route with this name, or None."""
    index = _index_of(config["routes"], name)
    return None if index is None else config["routes"][index]
