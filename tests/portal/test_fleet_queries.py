"""Lists and pages that grow with the fleet send as many queries at 500 rows as at 50 (no N+1),
and page their rows."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask

from portal.extensions import db
from tests.support.fleet import seed_fleet
from tests.support.statements import counted_statements

PATHS = (
    "/api/v1/hosts?page_size=50",
    "/api/v1/hosts?status=ready&page_size=50",
    "/api/v1/hosts?label=rack%3Dr1&page_size=50",
    "/api/v1/hosts?gpu_model=H200&page_size=50",
    "/hosts",
    "/hosts?status=degraded&label=rack&gpu_model=H200",
    "/api/v1/apps?page_size=50",
    "/apps",
    "/api/v1/operations?page_size=50",
    "/operations",
    "/operations?state=failed",
    "/",
    "/metrics",
    "/api/v1/monitoring/targets",
    "/api/v1/monitoring/events",
)


def statements_per_path(api: Any) -> dict[str, int]:
    counts = {}
    for path in PATHS:
        api.get(path)  # a first visit may bring application statuses up to date (a write)
        with counted_statements(db.engine) as seen:
            answer = api.get(path)
        assert answer.status_code == 200, (path, answer.status_code)
        counts[path] = len(seen)
    return counts


def test_lists_send_the_same_queries_at_50_and_500_rows(app: Flask, api_as: Any) -> None:
    api = api_as("admin")
    seed_fleet(50)
    at_50 = statements_per_path(api)
    seed_fleet(450)
    at_500 = statements_per_path(api)

    # No more at 500 (the Applications form stops listing every host past 200: one fewer).
    assert {path: n for path, n in at_500.items() if n > at_50[path]} == {}
    # A page of 50 rows in a handful of queries: one per row would show here as 50 or more.
    assert max(at_500.values()) <= 16, at_500


def test_host_page_and_detail_do_not_grow_with_the_fleet(app: Flask, api_as: Any) -> None:
    api = api_as("admin")
    first = seed_fleet(50)[0]
    paths = (f"/api/v1/hosts/{first}", f"/hosts/{first}")
    api.get(paths[0])  # the caller's first request also records its token's use
    counts = []
    for more in (0, 450):
        if more:
            seed_fleet(more)
        seen_per_path = []
        for path in paths:
            with counted_statements(db.engine) as seen:
                assert api.get(path).status_code == 200
            seen_per_path.append(len(seen))
        counts.append(seen_per_path)
    assert counts[0] == counts[1]


@pytest.mark.parametrize(
    ("path", "size", "total"),
    [
        ("/api/v1/hosts", 100, 120),
        ("/api/v1/apps", 100, 120),
        ("/api/v1/operations", 100, 120),
    ],
)
def test_api_lists_are_paged(app: Flask, api_as: Any, path: str, size: int, total: int) -> None:
    seed_fleet(total)
    api = api_as("viewer")

    first = api.get(f"{path}?page_size={size}")
    second = api.get(f"{path}?page_size={size}&page=2")
    too_big = api.get(f"{path}?page_size=100000")

    assert len(first.get_json()) == size and len(second.get_json()) == total - size
    assert json.loads(first.headers["X-Pagination"])["total"] == total
    assert too_big.status_code == 422


def test_the_applications_page_pages_hosts(app: Flask, api_as: Any) -> None:
    seed_fleet(120)
    api = api_as("viewer")

    first = api.get("/apps").get_data(as_text=True)
    last = api.get("/apps?page=3").get_data(as_text=True)

    assert "node-00000" in first and "node-00049" in first and "node-00050" not in first
    assert "page 1 of 3" in first
    assert "node-00119" in last and "page 3 of 3" in last


def test_a_large_fleet_picks_the_host_by_name_with_suggestions(app: Flask, api_as: Any) -> None:
    seed_fleet(250)
    operator = api_as("operator")

    page = operator.get("/apps").get_data(as_text=True)
    suggested = operator.get("/apps/host-suggestions?host_name=node-0012").get_data(as_text=True)
    unknown = operator.post(
        "/apps", data={"name": "web", "host_name": "node-99999", "image": "nginx:1"}
    )
    viewer = api_as("viewer").get("/apps/host-suggestions?host_name=node")

    assert 'name="host_name"' in page and '<select name="host_id"' not in page
    assert [f"node-0012{n}" in suggested for n in range(10)] == [True] * 10
    assert "node-00130" not in suggested
    assert unknown.status_code == 422 and "No host is named" in unknown.get_data(as_text=True)
    assert viewer.status_code == 403


def test_a_small_fleet_keeps_the_host_select(app: Flask, api_as: Any) -> None:
    seed_fleet(20)
    page = api_as("operator").get("/apps").get_data(as_text=True)
    assert '<select name="host_id"' in page and 'name="host_name"' not in page
