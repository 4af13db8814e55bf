"""An application page's live parts (status, ports, actions) as Server-Sent Events.

The health sweep writes an application's status whenever its containers change; an open page
learns of it here, within a second or two, without Refresh. The stream sends the page's own
fragments again whenever they differ from the last ones sent, and a heartbeat comment while
nothing changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from portal.apps.models import Application
from portal.core.sse import HEARTBEAT, sse_event
from portal.extensions import db

POLL_SECONDS = 1.0

Render = Callable[[Application], dict[str, str]]


def live_status_events(app_id: int, render: Render, heartbeat_s: float) -> Iterator[str]:
    """`parts` events {element id: inner HTML} when they change; `end` once the app is gone."""
    last: dict[str, str] | None = None
    quiet_since = time.monotonic()
    while True:
        app = db.session.get(Application, app_id)
        if app is None:
            yield sse_event({"reason": "deleted", "message": "The application was forgotten."},
                            event="end")  # fmt: skip
            return
        parts = render(app)
        if parts != last:
            yield sse_event({"status": app.status, "parts": parts}, event="parts")
            last, quiet_since = parts, time.monotonic()
        elif time.monotonic() - quiet_since >= heartbeat_s:
            yield HEARTBEAT
            quiet_since = time.monotonic()
        db.session.rollback()  # see what the sweep committed since
        db.session.expire_all()
        time.sleep(POLL_SECONDS)
