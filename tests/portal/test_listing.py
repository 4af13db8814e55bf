"""Server-side lists (portal/web/listing.py): sort, search and pages on SQLite and Postgres,
and the pages that use them (hosts, operations, audit) answering sorted, searched views."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portal.core.operations.models import Operation
from portal.core.operations.service import list_operations
from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.web.listing import Listing, SortColumn, StoredLowercase, list_page

SORTS = {
    "created": SortColumn(Operation.created_at, descending_first=True),
    "state": SortColumn(Operation.state, then=(Operation.created_at,)),
}
KINDS = ("deploy", "pull", "bootstrap")
STATES = ("succeeded", "failed")


def seed_operations(count: int, target: str) -> list[str]:
    """`count` operations on `target`, one second apart; return their ids, oldest first."""
    start = utcnow() - timedelta(hours=1)
    ids = []
    for number in range(count):
        operation = Operation(
            id=str(uuid.uuid4()), kind=KINDS[number % 3], target=target,
            state=STATES[number % 2], created_at=start + timedelta(seconds=number),
        )  # fmt: skip
        db.session.add(operation)
        ids.append(operation.id)
    db.session.commit()
    return ids


def read(app: Flask, query_string: str, target: str, page_size: int = 4) -> Listing:
    with app.test_request_context(f"/operations?{query_string}"):
        return list_page(
            list_operations(target=target),
            sortable=SORTS,
            default_sort="created",
            tiebreak=Operation.id,
            searchable=(StoredLowercase(Operation.kind), StoredLowercase(Operation.target)),
            page_size=page_size,
        )


def ids_of(listing: Listing) -> list[str]:
    return [operation.id for operation in listing.items]


def test_pages_read_in_order_from_either_end(any_db_app: Flask) -> None:
    target = f"host:{uuid.uuid4().hex[:8]}"
    ids = seed_operations(11, target)
    for order, expected in (("asc", ids), ("desc", ids[::-1])):
        # Pages past the middle are read from the other end: they must still join up.
        pages = [
            read(any_db_app, f"sort=created&order={order}&page={n}", target) for n in (1, 2, 3)
        ]
        assert [i for page in pages for i in ids_of(page)] == expected
        assert [page.pages for page in pages] == [3, 3, 3] and pages[0].total == 11
    assert ids_of(read(any_db_app, "page=4", target)) == []  # past the end: empty, not an error


def test_default_sort_and_direction_and_unknown_keys(any_db_app: Flask) -> None:
    target = f"host:{uuid.uuid4().hex[:8]}"
    ids = seed_operations(3, target)
    listing = read(any_db_app, "", target)
    assert (listing.sort, listing.descending) == ("created", True)  # newest first
    assert ids_of(listing) == ids[::-1]
    stale = read(any_db_app, "sort=nonsense&order=sideways&page=-3", target)
    assert (stale.sort, stale.descending, stale.page) == ("created", True, 1)
    # A header link flips the current column and starts another one its own way round.
    assert listing.sort_args("created")["order"] == "asc"
    assert listing.sort_args("state") == {"sort": "state", "order": "asc"}


def test_sort_by_a_column_orders_equal_values_by_the_next(any_db_app: Flask) -> None:
    target = f"host:{uuid.uuid4().hex[:8]}"
    ids = seed_operations(6, target)
    listing = read(any_db_app, "sort=state&order=asc", target, page_size=10)
    # failed (odd numbers) before succeeded (even), oldest first inside each.
    assert ids_of(listing) == [ids[1], ids[3], ids[5], ids[0], ids[2], ids[4]]


def test_search_words_must_all_match_as_typed_or_in_lower_case(any_db_app: Flask) -> None:
    token = uuid.uuid4().hex[:8]
    seed_operations(6, f"app:web-{token}@node")
    seed_operations(2, f"app:other-{token}@node")
    base = f"app:web-{token}@node"
    assert read(any_db_app, f"q=WEB-{token}", base, 10).total == 6  # stored lower, typed upper
    both = read(any_db_app, f"q=web-{token}+pull", base, 10)
    assert both.total == 2 and {op.kind for op in both.items} == {"pull"}
    assert both.args["q"] == f"web-{token} pull"
    assert read(any_db_app, f"q=web-{token}+nothing", base, 10).total == 0
    # LIKE's wildcards are plain characters in a search.
    assert read(any_db_app, "q=%25", base, 10).total == 0


def test_hosts_page_searches_any_case_and_sorts(
    client: FlaskClient, api_as: Callable[[str], Any]
) -> None:
    api = api_as("operator")
    tag = uuid.uuid4().hex[:6]
    for name in ("zeta", "alpha", "mid"):
        api.post("/api/v1/hosts", json={"name": f"{name}-{tag}", "address": "192.0.2.10",
                                        "ssh_password": "pw"})  # fmt: skip
    page = api.get(f"/hosts?q={tag.upper()}&sort=name&order=desc")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    positions = [html.index(f"{name}-{tag}") for name in ("zeta", "mid", "alpha")]
    assert positions == sorted(positions)
    assert 'aria-sort="descending"' in html and "3 hosts" in html


@pytest.mark.parametrize("path", ["/operations", "/admin/audit", "/hosts"])
def test_list_pages_answer_any_sort_and_search(
    client: FlaskClient, api_as: Callable[[str], Any], path: str
) -> None:
    api = api_as("admin")
    for query in ("", "?sort=target&order=asc", "?q=%25_%5C&page=999999999", "?sort=x&order=y"):
        answer = api.get(path + query)
        assert answer.status_code == 200, (path + query, answer.status_code)
