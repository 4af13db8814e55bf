"""flask-smorest pagination over SQLAlchemy select() statements."""

from __future__ import annotations

from typing import Any

from flask_smorest import Page
from sqlalchemy import func, select

from portal.extensions import db


class SelectPage(Page):
    """Page through a select(): count once, then LIMIT / OFFSET."""

    @property
    def items(self) -> list[Any]:
        query = self.collection.limit(self.page_params.page_size).offset(
            self.page_params.first_item
        )
        return list(db.session.scalars(query).unique().all())

    @property
    def item_count(self) -> int:
        query = self.collection.order_by(None)
        return db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
