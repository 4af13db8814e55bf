"""Many rows into one table at once: COPY on Postgres, an executemany elsewhere.

On psycopg an executemany goes out as one INSERT per row (pipelined, about 40 µs of CPU a row)
and a multi-row VALUES costs more to compile than to run; COPY writes thousands of rows in a
few milliseconds. Used where rows come by the thousand: operation log lines, the containers a
first sweep finds.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import JSON, Table, insert
from sqlalchemy.engine import Connection


def insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` (dicts with the same keys) into `table` in one go.

    Column defaults are not applied on Postgres: give every value a NOT NULL column needs.
    """
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), rows)
        return
    columns = list(rows[0])
    as_json = {name for name in columns if isinstance(table.c[name].type, JSON)}
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    with conn.connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(
                [
                    json.dumps(row[c]) if c in as_json and row[c] is not None else row[c]
                    for c in columns
                ]
            )
