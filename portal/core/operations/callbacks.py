"""Tell a caller's callback URL how its operation ended: a signed POST, retried with backoff.

The body is the operation's JSON; `X-Spectr-Signature: sha256=<hex>` is HMAC-SHA256 of the
body with the requesting user's webhook secret, so the receiver can check who sent it.
"""

from __future__ import annotations

import json
import logging
import random

import httpx
from flask import current_app

from portal.core.operations.models import Operation
from portal.core.security import sign_payload
from portal.extensions import db, queue

log = logging.getLogger(__name__)
MAX_CALLBACK_ATTEMPTS = 6


def schedule_callback(operation_id: str, attempt: int = 1, delay: float | None = None) -> None:
    from portal.core.operations.tasks import deliver_callback

    try:
        queue.submit(deliver_callback, operation_id, attempt, delay=delay)
    except Exception:
        log.warning("could not enqueue callback for operation %s", operation_id)


def deliver(operation_id: str, attempt: int) -> None:
    """Send one callback attempt; schedule the next one on failure."""
    operation = db.session.get(Operation, operation_id)
    if operation is None or not operation.callback_url:
        return
    body = json.dumps(_callback_body(operation), sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "X-Spectr-Event": "operation.finished"}
    secret = operation.requested_by.webhook_secret if operation.requested_by else None
    if secret:
        headers["X-Spectr-Signature"] = "sha256=" + sign_payload(secret, body)
    timeout = current_app.config["SPECTR_CALLBACK_TIMEOUT_SECONDS"]
    try:
        response = httpx.post(
            operation.callback_url, content=body, headers=headers, timeout=timeout
        )
        delivered = response.status_code < 300
        outcome = f"HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        delivered, outcome = False, exc.__class__.__name__
    _record_attempt(operation, attempt, delivered, outcome)


def _record_attempt(operation: Operation, attempt: int, delivered: bool, outcome: str) -> None:
    retry = not delivered and attempt < MAX_CALLBACK_ATTEMPTS
    if delivered:
        operation.callback_state = "delivered"
    elif retry:
        operation.callback_state = f"retrying: {outcome}"
    else:
        operation.callback_state = f"failed: {outcome}"
    db.session.commit()
    if retry:
        delay = random.uniform(0.5, 1.0) * 2**attempt
        schedule_callback(operation.id, attempt + 1, delay=delay)


def _callback_body(operation: Operation) -> dict:
    from portal.core.operations.schemas import OperationSchema

    return OperationSchema().dump(operation)
