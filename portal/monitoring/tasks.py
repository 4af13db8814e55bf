"""Background work of monitoring: the event detectors (a periodic job) and webhook deliveries."""

from __future__ import annotations

from portal.core.ticker import periodic_job
from portal.extensions import queue
from portal.monitoring.settings import DEFAULTS


def _event_interval(app: object) -> float:
    config = app.config  # type: ignore[attr-defined]
    for key in ("SPECTR_MONITORING_EVENT_INTERVAL_SECONDS", "MONITORING_EVENT_INTERVAL_SECONDS"):
        if key in config:
            return float(config[key])
    return float(DEFAULTS["MONITORING_EVENT_INTERVAL_SECONDS"])


@periodic_job("detect_events", _event_interval)
def run_event_detection() -> None:
    """Open and resolve events, then tell the webhooks."""
    from portal.monitoring.events import detect_events
    from portal.monitoring.webhooks import announce

    opened, resolved = detect_events()
    if opened:
        announce(opened, "opened")
    if resolved:
        announce(resolved, "resolved")


@queue.task(name="spectr.deliver_event")
def deliver_event(delivery_id: int, attempt: int = 1) -> None:
    """POST one event to one webhook."""
    from portal.monitoring.webhooks import deliver

    with queue.flask_app.app_context():
        deliver(delivery_id, attempt)
