"""Tell a caller's callback URL how its operation ended: a signed POST, retried with backoff.

The body is the operation's JSON; `X-Spectr-Signature: sha256=<hex>` is HMAC-SHA256 of the
body with the requesting user's webhook secret, so the receiver can check who sent it.

Delivery is an outbox on the operation row, because huey has no acknowledgements: whoever ends
an operation writes `callback_state = "pending"` and a due time in the same UPDATE as the final
state (`owed_callback_values`). A delivery task claims the row with a conditional UPDATE that
pushes the due time past the attempt's timeout, so two deliveries of the same task cannot both
send, and a worker killed anywhere leaves a row that `redeliver_due_callbacks` (run by the
recovery sweep) enqueues again. Delivery is at least once: receivers deduplicate by operation
id and `X-Spectr-Delivery-Attempt`.
"""

from __future__ import annotations

import json
import logging
import random
from datetime import timedelta
from typing import Any

import httpx
from flask import current_app
from sqlalchemy import and_, case, or_, select, update

from portal.core import outbound
from portal.core.operations.models import (
    CALLBACK_DELIVERED,
    CALLBACK_PENDING,
    FINAL_STATES,
    Operation,
)
from portal.core.security import sign_payload
from portal.core.timeutil import utcnow
from portal.extensions import db, queue

log = logging.getLogger(__name__)
MAX_CALLBACK_ATTEMPTS = 6
RETRYING = "retrying: "


def owed_callback_values() -> dict[str, Any]:
    """Columns to set with an operation's final state: a pending callback when it has a URL."""
    has_url = Operation.callback_url.is_not(None)
    return {
        "callback_state": case((has_url, CALLBACK_PENDING), else_=Operation.callback_state),
        "callback_due_at": case((has_url, utcnow()), else_=Operation.callback_due_at),
    }


def schedule_callback(operation_id: str, delay: float | None = None) -> None:
    """Enqueue a delivery; if the queue is away, the recovery sweep sends it later."""
    from portal.core.operations.tasks import deliver_callback

    try:
        queue.submit(deliver_callback, operation_id, delay=delay)
    except Exception:
        log.warning("could not enqueue callback for operation %s; recovery will", operation_id)


def deliver(operation_id: str) -> None:
    """Send one callback attempt if one is due; schedule the next one on failure."""
    attempt = _claim(operation_id)
    if attempt is None:
        return  # delivered, not yet due, or another worker holds this attempt
    operation = db.session.get(Operation, operation_id)
    body = json.dumps(_callback_body(operation), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Spectr-Event": "operation.finished",
        "X-Spectr-Delivery-Attempt": str(attempt),
    }
    secret = operation.requested_by.webhook_secret if operation.requested_by else None
    if secret:
        headers["X-Spectr-Signature"] = "sha256=" + sign_payload(secret, body)
    url = operation.callback_url
    db.session.rollback()  # hold no transaction (SQLite: no lock) while the receiver answers
    try:
        response = outbound.post(url, content=body, headers=headers, timeout=_timeout())
        delivered = response.status_code < 300
        outcome = f"HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        delivered, outcome = False, exc.__class__.__name__
    except outbound.OutboundRefused as exc:  # no retry: the address will not become allowed
        log.warning("callback of operation %s not sent: %s", operation_id, exc)
        _record_attempt(operation_id, attempt, False, "address refused", retryable=False)
        return
    _record_attempt(operation_id, attempt, delivered, outcome)


def redeliver_due_callbacks(grace_seconds: float, limit: int = 1000) -> int:
    """Enqueue callbacks that are owed and overdue: their worker died or their task was lost."""
    cutoff = utcnow() - timedelta(seconds=grace_seconds)
    due = db.session.scalars(
        select(Operation.id)
        .where(_owed(), Operation.callback_due_at < cutoff)
        .order_by(Operation.callback_due_at)
        .limit(limit)
    ).all()
    db.session.rollback()
    for operation_id in due:
        schedule_callback(operation_id)
    return len(due)


def _owed() -> Any:
    return and_(
        Operation.state.in_(FINAL_STATES),
        Operation.callback_url.is_not(None),
        or_(
            Operation.callback_state == CALLBACK_PENDING,
            Operation.callback_state.startswith(RETRYING),
        ),
    )


def _timeout() -> float:
    return float(current_app.config["SPECTR_CALLBACK_TIMEOUT_SECONDS"])


def _claim(operation_id: str) -> int | None:
    """Take the next attempt of a due callback; None when there is nothing to send now."""
    now = utcnow()
    # The attempt owns the row for twice its HTTP timeout: a worker that dies while sending
    # leaves the row due again once that passes.
    claimed_until = now + timedelta(seconds=2 * _timeout())
    with db.engine.begin() as conn:
        return conn.execute(
            update(Operation)
            .where(
                Operation.id == operation_id,
                _owed(),
                or_(Operation.callback_due_at.is_(None), Operation.callback_due_at <= now),
            )
            .values(
                callback_attempts=Operation.callback_attempts + 1, callback_due_at=claimed_until
            )
            .returning(Operation.callback_attempts)
        ).scalar_one_or_none()


def _record_attempt(
    operation_id: str, attempt: int, delivered: bool, outcome: str, retryable: bool = True
) -> None:
    retry = retryable and not delivered and attempt < MAX_CALLBACK_ATTEMPTS
    delay = random.uniform(0.5, 1.0) * 2**attempt
    if delivered:
        values = {"callback_state": CALLBACK_DELIVERED, "callback_due_at": None}
    elif retry:
        due = utcnow() + timedelta(seconds=delay)
        values = {"callback_state": f"{RETRYING}{outcome}"[:32], "callback_due_at": due}
    else:
        values = {"callback_state": f"failed: {outcome}"[:32], "callback_due_at": None}
    with db.engine.begin() as conn:
        conn.execute(update(Operation).where(Operation.id == operation_id).values(**values))
    if retry:
        schedule_callback(operation_id, delay=delay)


def _callback_body(operation: Operation) -> dict:
    from portal.core.operations.schemas import OperationSchema

    return OperationSchema().dump(operation)
