"""Count the SQL statements a block sends, with a SQLAlchemy engine event listener."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event


@dataclass
class Statements:
    """What a block sent: each statement's SQL, and how many parameter sets it carried."""

    sql: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)

    def touching(self, table: str) -> list[str]:
        """The statements that name `table` (reads and writes)."""
        return [sql for sql in self.sql if f" {table}" in sql or f'"{table}"' in sql]

    def writes(self, table: str) -> int:
        """Rows written to `table` by INSERT, UPDATE and DELETE statements."""
        return sum(
            rows
            for sql, rows in zip(self.sql, self.rows, strict=True)
            if sql.split(None, 1)[0] in ("INSERT", "UPDATE", "DELETE") and table in sql[:120]
        )

    def __len__(self) -> int:
        return len(self.sql)


@contextlib.contextmanager
def counted_statements(engine: Any) -> Iterator[Statements]:
    """Record every statement `engine` executes inside the block."""
    seen = Statements()

    def before(_conn: Any, _cursor: Any, sql: str, params: Any, _ctx: Any, many: bool) -> None:
        seen.sql.append(" ".join(sql.split()))
        seen.rows.append(len(params) if many else 1)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)
