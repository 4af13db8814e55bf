"""Values must fit their columns: checked before every flush, named by field, on every database.

Postgres refuses text longer than a VARCHAR, integers beyond INTEGER or BIGINT and NUL
characters, with errors that name no column (so a 500); SQLite stores them silently. Checking
the column sizes here covers every way a value reaches the database (API, pages, CLI, tasks)
and turns it into a 422 naming the field.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

from sqlalchemy import BigInteger, Integer, SmallInteger, String, event, inspect
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

from portal.core.errors import ValidationFailed

INTEGER_RANGES = ((SmallInteger, 2**15 - 1), (BigInteger, 2**63 - 1), (Integer, 2**31 - 1))


def check_column_limits(session: Session, *_: Any) -> None:
    """Before a flush: refuse new or changed values their columns cannot hold."""
    errors: dict[str, list[str]] = {}
    # session.dirty is computed on each access (a scan of the identity map): once per flush,
    # not once per object, or a sweep flushing 1,000 applications spent 20 s here.
    dirty = session.dirty
    for obj in chain(session.new, dirty):
        state = inspect(obj)
        changed_only = obj in dirty
        for attribute in state.mapper.column_attrs:
            if changed_only and not state.attrs[attribute.key].history.has_changes():
                continue
            value = state.dict.get(attribute.key)
            problem = _problem(attribute.columns[0].type, value)
            if problem:
                errors[attribute.key] = [problem]
    if errors:
        raise ValidationFailed(f"Invalid input in: {', '.join(sorted(errors))}.", errors)


def _problem(column_type: Any, value: Any) -> str | None:
    if isinstance(value, str):
        if "\0" in value:
            return "must not contain NUL characters"
        if hasattr(column_type, "plaintext_limit"):  # stored transformed, e.g. encrypted
            limit = column_type.plaintext_limit()
            if len(value.encode()) > limit:
                return f"must be at most {limit} bytes"
            return None
        limit = _text_limit(column_type)
        if limit is not None and len(value) > limit:
            return f"must be at most {limit} characters"
    elif isinstance(value, int) and not isinstance(value, bool):
        stored = column_type.impl if isinstance(column_type, TypeDecorator) else column_type
        for kind, largest in INTEGER_RANGES:
            if isinstance(stored, kind) and not -largest - 1 <= value <= largest:
                return f"must be between {-largest - 1} and {largest}"
            if isinstance(stored, kind):
                break
    return None


def _text_limit(column_type: Any) -> int | None:
    """Characters a text column holds."""
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl_instance
    return column_type.length if isinstance(column_type, String) else None


def init_column_limits() -> None:
    if not event.contains(Session, "before_flush", check_column_limits):
        event.listen(Session, "before_flush", check_column_limits)
