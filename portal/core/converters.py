"""URL converters: ids in paths must fit the database's integer columns, or it is a 404."""

from __future__ import annotations

from werkzeug.routing import IntegerConverter

# Primary keys are INTEGER columns: 32-bit on Postgres.
MAX_DATABASE_ID = 2**31 - 1
# BIGINT columns (sizes in bytes).
MAX_BIGINT = 2**63 - 1


class DatabaseIdConverter(IntegerConverter):
    """`<id:name>`: a positive integer that an INTEGER primary key can hold."""

    def __init__(self, map: object, *args: object, **kwargs: object) -> None:
        super().__init__(map, min=1, max=MAX_DATABASE_ID)  # type: ignore[arg-type]
