"""URL converters: ids in paths must fit the database's 64-bit integers, or it is a 404."""

from __future__ import annotations

from werkzeug.routing import IntegerConverter

MAX_DATABASE_ID = 2**63 - 1


class DatabaseIdConverter(IntegerConverter):
    """`<id:name>`: a positive integer that a BIGINT column can hold."""

    def __init__(self, map: object, *args: object, **kwargs: object) -> None:
        super().__init__(map, min=1, max=MAX_DATABASE_ID)  # type: ignore[arg-type]
