"""Live parts of a page over Server-Sent Events: one stream per page, not one per row.

A page marks itself with data-live-url; the stream sends `parts` events whose `parts` are
{element id: inner HTML} (beside anything else the page's data carries), and the page's script swaps each element whose HTML changed. The server renders the
parts again every poll, from the rows the health sweep and the workers commit, and sends them
only when they differ from what it sent last; while nothing changes a heartbeat comment keeps
the connection (and any proxy between) alive. The browser reconnects by itself.

A list that gains and loses rows adds `rows`: {tbody id: [[row key, the row's <tr> HTML], ...]}
in the list's order; the page removes the rows whose key went, puts new ones where the list has
them and replaces changed ones (js/spectr.js syncRows). `region` ({"id", "html"}) is the list's
region whole, for when its tables themselves change (a host's first application); such a stream
passes a `fingerprint` that covers them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from portal.core.sse import HEARTBEAT, sse_event
from portal.extensions import db

Payload = dict[str, Any]  # {"parts": {element id: inner HTML}, ...}
# None: what the page shows is gone (the stream says so in an `end` event and stops).
Render = Callable[[], Payload | None]


def _parts(payload: Payload) -> object:
    return payload["parts"]


def rows_and_parts(payload: Payload) -> object:
    """The fingerprint of a list that gains and loses rows."""
    return payload["parts"], payload.get("rows")


def live_parts_events(
    render: Render,
    heartbeat_s: float,
    poll_s: float = 1.0,
    fingerprint: Callable[[Payload], object] = _parts,
    gone: str = "What this page shows is gone.",
) -> Iterator[str]:
    """A `parts` event of `render()` whenever its fingerprint (by default its parts) changes;
    heartbeats in between."""
    last: object = None
    quiet_since = time.monotonic()
    while True:
        payload = render()
        if payload is None:
            yield sse_event({"reason": "deleted", "message": gone}, event="end")
            return
        if (seen := fingerprint(payload)) != last:
            yield sse_event(payload, event="parts")
            last, quiet_since = seen, time.monotonic()
        elif time.monotonic() - quiet_since >= heartbeat_s:
            yield HEARTBEAT
            quiet_since = time.monotonic()
        db.session.rollback()  # the next round sees what the sweep committed since
        db.session.expire_all()
        time.sleep(poll_s)
