"""Marshmallow fields shared by every context's schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import marshmallow as ma


class UtcDateTime(ma.fields.DateTime):
    """Timestamps are stored as naive UTC; show them with their zone, read any zone as UTC."""

    def _serialize(self, value: datetime | None, attr: Any, obj: Any, **kwargs: Any) -> Any:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return super()._serialize(value, attr, obj, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        if moment.tzinfo is not None:
            try:
                moment = moment.astimezone(UTC).replace(tzinfo=None)
            except OverflowError:  # 0001-01-01T00:00+14:00 is before the first UTC moment
                raise ma.ValidationError("The moment is outside the calendar in UTC.") from None
        return moment


class PartialLoad:
    """Mix into a schema whose every field is optional when loaded (a PATCH body).

    marshmallow ignores `partial` in `class Meta`; it must reach the constructor, and with it
    fields left out are skipped, defaults included, so a PATCH changes only what it names.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("partial", True)
        super().__init__(**kwargs)  # type: ignore[call-arg]
