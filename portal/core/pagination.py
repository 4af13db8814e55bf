"""flask-smorest pagination over SQLAlchemy select() statements."""

from __future__ import annotations

from typing import Any

from flask_smorest import Page
from sqlalchemy import func, select

from portal.extensions import db

# Offsets past any real table; larger page numbers would overflow the database's integers.
MAX_OFFSET = 2**31


class SelectPage(Page):
    """Page through a select(): count once, then LIMIT / OFFSET."""

    @property
    def items(self) -> list[Any]:
        offset = min(self.page_params.first_item, MAX_OFFSET)
        query = self.collection.limit(self.page_params.page_size).offset(offset)
        return list(db.session.scalars(query).unique().all())

    @property
    def item_count(self) -> int:
        query = self.collection.order_by(None)
        return db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
