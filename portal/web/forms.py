"""What form pages share: one way to report a refused form, and a secret shown once after a
redirect (post/redirect/get), so reloading the page creates nothing twice."""

from __future__ import annotations

import json
from typing import Any

import marshmallow as ma
from flask import flash, session

from portal.core.errors import SpectrError, ValidationFailed
from portal.core.secrets_box import secret_box
from portal.web.display import describe_error

ONE_TIME_KEY = "one_time_secret"
# A page showing a secret is not kept by the browser (back button, disk cache).
NO_STORE = {"Cache-Control": "no-store"}


def flash_error(exc: SpectrError) -> None:
    """Flash the error's sentence and each wrong field as "field: message", once."""
    flash(describe_error(exc.message, exc.details), "error")


def load_form(schema: ma.Schema, raw: dict[str, Any]) -> Any:
    """Read a form through the API's schema: pages and the API accept the same input."""
    try:
        return schema.load(raw)
    except ma.ValidationError as exc:
        raise ValidationFailed("Some fields are invalid.", exc.normalized_messages()) from None


def keep_secret(kind: str, **values: Any) -> None:
    """Keep a just-made secret for the next page only, encrypted inside the session cookie."""
    sealed = secret_box().encrypt(json.dumps({"kind": kind, **values}))
    session[ONE_TIME_KEY] = sealed


def take_secret(kind: str) -> dict[str, Any] | None:
    """The secret kept for this page, removed from the session as it is read."""
    sealed = session.get(ONE_TIME_KEY)
    if sealed is None:
        return None
    try:
        values = json.loads(secret_box().decrypt(sealed))
    except ValueError:  # sealed with a key since rotated away: nothing to show
        session.pop(ONE_TIME_KEY)
        return None
    if values.pop("kind", None) != kind:
        return None  # kept for another page; that page takes it
    session.pop(ONE_TIME_KEY)
    return values
