"""An application page's live parts (status, ports, actions) as Server-Sent Events.

The health sweep writes an application's status whenever its containers change; an open page
learns of it here, within a second or two, without Refresh (see portal.core.live_parts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from portal.apps.models import Application
from portal.core.live_parts import live_parts_events
from portal.extensions import db

Render = Callable[[Application], dict[str, str]]


def live_status_events(app_id: int, render: Render, heartbeat_s: float) -> Iterator[str]:
    """`parts` events {element id: inner HTML} when they change; `end` once the app is gone."""

    def payload() -> dict[str, Any] | None:
        app = db.session.get(Application, app_id)
        return None if app is None else {"status": app.status, "parts": render(app)}

    return live_parts_events(payload, heartbeat_s, gone="The application was forgotten.")
