"""What the portal does when Postgres restarts or cannot be reached.

Pooled connections outlive a Postgres restart on the client side only: the server closed them,
and the first statement on each fails. Two layers keep a caller from ever seeing a 500 for it:

1. At checkout, a pooled connection whose socket has something to read is discarded and
   replaced. An idle connection has nothing to read; a closed one reads the server's goodbye
   (FATAL 57P01) or EOF. This is one poll() system call, not pre-ping's round trip per checkout
   (which config.py rejects for its cost), and it is the check redis-py runs on its own pool.
2. What still fails (Postgres down, or a connection lost mid-request) is a `DatabaseUnavailable`:
   a 503 with Retry-After, mapped with every other error in core.api_base.
"""

from __future__ import annotations

import select
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError

# SQLSTATE classes that mean "the server is not there or cannot take us now", not a bad query:
# 08 connection exception, 53 insufficient resources (too many connections, disk full),
# 57P0x shutdown / crash / starting up. None: the client could not connect at all.
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "53", "57P")
_FRESH = "spectr_fresh_connection"


def init_db_outage_handling(app: Flask) -> None:
    """Check every Postgres connection of the app's engines for a server-side close at checkout."""
    from portal.extensions import db  # extensions imports core.api_base, which imports this

    with app.app_context():
        for engine in db.engines.values():
            if engine.dialect.name == "postgresql":
                event.listen(engine, "connect", _mark_fresh)
                event.listen(engine, "checkout", _discard_if_closed_by_server)


def _mark_fresh(_dbapi_connection: Any, record: Any) -> None:
    record.info[_FRESH] = True


def _discard_if_closed_by_server(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Raise DisconnectionError, which makes the pool reconnect, for a connection the server ended.

    A connection made for this very checkout is not checked: SQLAlchemy gives a checkout two
    tries, and a second DisconnectionError (a restart closing the replacement too) would end in
    a bare InvalidRequestError, a 500. A replacement that fails fails on its first statement,
    with an OperationalError that the API answers with a 503.
    """
    if record.info.pop(_FRESH, False):
        return
    if getattr(dbapi_connection, "closed", False) or getattr(dbapi_connection, "broken", False):
        raise DisconnectionError("connection closed")
    try:
        fd = dbapi_connection.fileno()
    except Exception as exc:  # psycopg raises when the connection is gone
        raise DisconnectionError(str(exc)) from exc
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    if poller.poll(0):
        raise DisconnectionError("the server closed the pooled connection or sent data unasked")


def database_unavailable(error: DBAPIError) -> bool:
    """True when error says the database cannot be reached, not that a statement was wrong."""
    if error.connection_invalidated:
        return True
    if not isinstance(error, OperationalError):
        return False
    orig: Any = error.orig
    # sqlite3 errors carry no SQLSTATE; their OperationalErrors are mostly schema problems.
    if not hasattr(orig, "sqlstate"):
        return False
    return orig.sqlstate is None or orig.sqlstate.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES)
