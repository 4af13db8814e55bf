"""Periodic jobs of administration."""

from __future__ import annotations

from portal.admin.sessions import forget_old_failures
from portal.core.ticker import periodic_job
from portal.extensions import db


@periodic_job("forget_sign_in_failures", lambda app: 600.0)
def forget_sign_in_failures() -> None:
    """Drop failed sign-in counts that can no longer lock anyone."""
    forget_old_failures()
    db.session.commit()
