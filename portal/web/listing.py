"""Long lists as pages (hosts, operations, the audit log): one page of a select(), sorted by a
column the page allows, searched by the words typed, with the links a table needs to re-sort
and to turn pages. The database does the work: a page reads its rows and one count, never the
whole table, so the lists stay fast at 10,000 hosts and 100,000 operations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import request
from sqlalchemy import and_, func, or_, select
from sqlalchemy.sql import ColumnElement

from portal.extensions import db

MAX_PAGE = 10**6  # past any real list; keeps OFFSET inside the database's integers
MAX_WORDS = 8  # a search is a few words; more only cost LIKE scans
MAX_QUERY = 200


@dataclass(frozen=True)
class SortColumn:
    """A column a list may be sorted by, and whether its first click sorts newest/largest first.

    `then`: columns that order rows of equal value before the unique tiebreak, chosen to
    follow a composite index ((state, created_at) for operations), so that the database reads
    one page from the index instead of sorting every row of the largest group.
    """

    column: Any
    descending_first: bool = False
    then: tuple[Any, ...] = ()


@dataclass(frozen=True)
class StoredLowercase:
    """A column whose values are mostly lower case (kinds, targets): searched with a plain
    LIKE for the word as typed or in lower case, which calls no per-row lower() (that alone
    cost 200 ms over 100,000 operations on Postgres)."""

    column: Any


@dataclass(frozen=True)
class Listing:
    """One page of a list, and how it was asked for (sort, order, search, filters)."""

    items: list[Any]
    total: int
    page: int
    page_size: int
    sort: str
    descending: bool
    q: str
    filters: dict[str, str] = field(default_factory=dict)
    sortable: Mapping[str, SortColumn] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    @property
    def args(self) -> dict[str, str]:
        """The query string of this view without its page: filters, search, sort."""
        args = dict(self.filters)
        if self.q:
            args["q"] = self.q
        args["sort"] = self.sort
        args["order"] = "desc" if self.descending else "asc"
        return args

    def sort_args(self, key: str) -> dict[str, str]:
        """The query string that sorts by `key`: the other way round when it is already."""
        if key == self.sort:
            descending = not self.descending
        else:
            descending = self.sortable[key].descending_first
        return {**self.args, "sort": key, "order": "desc" if descending else "asc"}

    def page_args(self, page: int) -> dict[str, str | int]:
        return {**self.args, "page": page}


def list_page(
    query: Any,
    *,
    sortable: Mapping[str, SortColumn],
    default_sort: str,
    tiebreak: Any,
    searchable: Sequence[Any] = (),
    filters: Mapping[str, str] | None = None,
    page_size: int = 50,
) -> Listing:
    """Read the request's `sort`, `order`, `q` and `page` and return that page of `query`.

    Unknown sort keys fall back to the default (a stale bookmark must not 400); each word of
    `q` must match one of `searchable`, case-insensitively; `tiebreak` (a unique column) keeps
    the order stable from one page to the next.
    """
    sort = request.args.get("sort", default_sort)
    if sort not in sortable:
        sort = default_sort
    order = request.args.get("order")
    descending = order == "desc" if order in ("asc", "desc") else sortable[sort].descending_first
    q = " ".join(request.args.get("q", "")[:MAX_QUERY].split())
    page = min(max(request.args.get("page", 1, type=int), 1), MAX_PAGE)
    if q and searchable:
        query = query.where(_matches_words(q, searchable))
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    columns = (sortable[sort].column, *sortable[sort].then, tiebreak)
    items = _read_page(query, columns, descending, page, page_size, total)
    return Listing(
        items=items,
        total=total or 0,
        page=page,
        page_size=page_size,
        sort=sort,
        descending=descending,
        q=q,
        filters=dict(filters or {}),
        sortable=sortable,
    )


def _read_page(
    query: Any, columns: Sequence[Any], descending: bool, page: int, size: int, total: int
) -> list[Any]:
    """The rows of one page. A page past the middle is read from the other end (OFFSET from
    the end, then reversed): the last of 4,000 pages costs what the first does, not 85 ms."""
    offset = (page - 1) * size
    from_end = offset > total // 2 and offset < total
    if from_end:
        size = min(size, total - offset)
        offset, descending = total - offset - size, not descending
    ordered = query.order_by(None).order_by(
        *(column.desc() if descending else column.asc() for column in columns)
    )
    rows = list(db.session.scalars(ordered.limit(size).offset(offset)).unique().all())
    return rows[::-1] if from_end else rows


def _matches_words(q: str, searchable: Sequence[Any]) -> ColumnElement[bool]:
    words = q.split()[:MAX_WORDS]
    return and_(*(or_(*(_contains(col, word) for col in searchable)) for word in words))


def _contains(searchable: Any, word: str) -> ColumnElement[bool]:
    if isinstance(searchable, StoredLowercase):
        spellings = dict.fromkeys((word, word.lower()))
        return or_(*(searchable.column.contains(w, autoescape=True) for w in spellings))
    return func.lower(searchable).contains(word.lower(), autoescape=True)
