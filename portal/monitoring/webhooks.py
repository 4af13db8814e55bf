"""Tell webhooks about events: a JSON POST signed with the webhook's secret, retried with backoff.

`X-Spectr-Signature: sha256=<hex>` is HMAC-SHA256 of the exact body with the webhook's secret
(shown once, when the webhook is created), the same scheme as operation callbacks.

When many events of one kind open (or resolve) at once, say a rack losing power makes
hundreds of hosts unreachable, a webhook gets one grouped delivery for them instead of one
POST each: `{"transition", "kind", "count", "events": [the first GROUP_BODY_EVENTS],
"more": N}`, with `X-Spectr-Event-Count`. A single event keeps the one-event body.
"""

from __future__ import annotations

import json
import logging
import random
import secrets

import httpx
from sqlalchemy import select

from portal.core import outbound
from portal.core.audit import record_audit
from portal.core.errors import Conflict, NotFound, ValidationFailed
from portal.core.security import sign_payload
from portal.core.timeutil import isoformat
from portal.extensions import db, queue
from portal.monitoring.models import EVENT_KINDS, Event, EventDelivery, Webhook
from portal.monitoring.settings import monitoring_setting

log = logging.getLogger(__name__)


def create_webhook(name: str, url: str, event_kinds: list[str], secret: str | None) -> Webhook:
    """Register a webhook; the secret is generated unless given."""
    unknown = sorted(set(event_kinds) - set(EVENT_KINDS))
    if unknown:
        raise ValidationFailed(
            "Unknown event kinds.", {"event_kinds": [f"unknown: {', '.join(unknown)}"]}
        )
    if db.session.scalar(select(Webhook.id).filter_by(name=name)):
        raise Conflict(f"A webhook named '{name}' exists already.")
    webhook = Webhook(
        name=name, url=url, event_kinds=event_kinds, secret=secret or secrets.token_urlsafe(32)
    )
    db.session.add(webhook)
    db.session.flush()
    record_audit("webhook.create", f"webhook:{webhook.id}", details={"name": name, "url": url})
    db.session.commit()
    return webhook


def list_webhooks() -> list[Webhook]:
    return list(db.session.scalars(select(Webhook).order_by(Webhook.name)))


def get_webhook(webhook_id: int) -> Webhook:
    webhook = db.session.get(Webhook, webhook_id)
    if webhook is None:
        raise NotFound(f"No webhook {webhook_id}.")
    return webhook


def delete_webhook(webhook: Webhook) -> None:
    record_audit("webhook.delete", f"webhook:{webhook.id}", details={"name": webhook.name})
    db.session.delete(webhook)
    db.session.commit()


def list_deliveries(webhook: Webhook, limit: int = 100) -> list[EventDelivery]:
    query = (
        select(EventDelivery)
        .filter_by(webhook_id=webhook.id)
        .order_by(EventDelivery.id.desc())
        .limit(limit)
    )
    return list(db.session.scalars(query))


# From this many events of one kind in one announcement, each webhook gets one delivery.
GROUP_FROM = 5
GROUP_BODY_EVENTS = 50


def announce(events: list[Event], transition: str) -> int:
    """Create the deliveries of `events` to interested webhooks, enqueue them; return the count.

    One delivery per (event, webhook), except that a kind with GROUP_FROM events or more goes
    to each webhook as one grouped delivery.
    """
    webhooks = db.session.scalars(select(Webhook).filter_by(active=True)).all()
    by_kind: dict[str, list[Event]] = {}
    for event in events:
        by_kind.setdefault(event.kind, []).append(event)
    deliveries = []
    for kind, same_kind in by_kind.items():
        hooks = [hook for hook in webhooks if not hook.event_kinds or kind in hook.event_kinds]
        if len(same_kind) >= GROUP_FROM:
            ids = [event.id for event in same_kind]
            deliveries += [
                EventDelivery(
                    event=same_kind[0], webhook=hook, transition=transition, event_ids=ids
                )
                for hook in hooks
            ]
        else:
            deliveries += [
                EventDelivery(event=event, webhook=hook, transition=transition)
                for event in same_kind
                for hook in hooks
            ]
    db.session.add_all(deliveries)
    db.session.commit()
    for delivery in deliveries:
        schedule_delivery(delivery.id, 1)
    return len(deliveries)


def schedule_delivery(delivery_id: int, attempt: int, delay: float | None = None) -> None:
    from portal.monitoring.tasks import deliver_event

    try:
        queue.submit(deliver_event, delivery_id, attempt, delay=delay)
    except Exception:  # the row stays "pending": visible, and the queue outage is logged
        log.warning("could not enqueue event delivery %s", delivery_id)


def deliver(delivery_id: int, attempt: int) -> None:
    """Send one attempt of a delivery; schedule the next one when it fails."""
    delivery = db.session.get(EventDelivery, delivery_id)
    if delivery is None or delivery.state == "delivered":
        return
    if delivery.event_ids:
        document = group_body(delivery.event.kind, delivery.event_ids, delivery.transition)
    else:
        document = event_body(delivery.event, delivery.transition)
    body = json.dumps(document, sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Spectr-Event": f"{delivery.event.kind}.{delivery.transition}",
        "X-Spectr-Event-Count": str(len(delivery.event_ids or ()) or 1),
        "X-Spectr-Delivery": str(delivery.id),
        "X-Spectr-Signature": "sha256=" + sign_payload(delivery.webhook.secret, body),
    }
    timeout = float(monitoring_setting("MONITORING_WEBHOOK_TIMEOUT_SECONDS"))
    try:
        response = outbound.post(
            delivery.webhook.url, content=body, headers=headers, timeout=timeout
        )
        delivered, outcome = response.status_code < 300, f"HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        delivered, outcome = False, exc.__class__.__name__
    except outbound.OutboundRefused:  # no retry: the address will not become allowed
        _record_attempt(delivery, attempt, False, "address refused", retryable=False)
        return
    _record_attempt(delivery, attempt, delivered, outcome)


def _record_attempt(
    delivery: EventDelivery, attempt: int, delivered: bool, outcome: str, retryable: bool = True
) -> None:
    most = int(monitoring_setting("MONITORING_WEBHOOK_MAX_ATTEMPTS"))
    retry = retryable and not delivered and attempt < most
    delivery.attempts, delivery.last_outcome = attempt, outcome
    delivery.state = "delivered" if delivered else ("retrying" if retry else "failed")
    db.session.commit()
    if retry:
        schedule_delivery(delivery.id, attempt + 1, delay=backoff_seconds(attempt))


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with jitter: about 1, 2, 4, 8 ... seconds."""
    return random.uniform(0.5, 1.0) * 2**attempt


def group_body(kind: str, event_ids: list[int], transition: str) -> dict:
    """The body of a grouped delivery: how many events, and the first ones in full."""
    shown = db.session.scalars(
        select(Event).where(Event.id.in_(event_ids[:GROUP_BODY_EVENTS])).order_by(Event.id)
    ).all()
    return {
        "transition": transition,
        "kind": kind,
        "count": len(event_ids),
        "events": [event_fields(event) for event in shown],
        "more": max(0, len(event_ids) - len(shown)),
    }


def event_body(event: Event, transition: str) -> dict:
    return {"transition": transition, "event": event_fields(event)}


def event_fields(event: Event) -> dict:
    return {
        "id": event.id,
        "kind": event.kind,
        "severity": event.severity,
        "state": event.state,
        "subject": event.subject,
        "message": event.message,
        "details": event.details,
        "opened_at": isoformat(event.opened_at),
        "resolved_at": isoformat(event.resolved_at),
    }
