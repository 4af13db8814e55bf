"""Periodic jobs of administration."""

from __future__ import annotations

from portal.admin.oidc import forget_old_sign_in_states
from portal.admin.sessions import forget_old_failures
from portal.core.ticker import periodic_job
from portal.extensions import db


@periodic_job("forget_sign_in_failures", lambda app: 600.0)
def forget_sign_in_failures() -> None:
    """Drop failed sign-in counts that can no longer lock anyone, and old OpenID states."""
    forget_old_failures()
    forget_old_sign_in_states()
    db.session.commit()


@periodic_job("refresh_directory_users", lambda app: 900.0)
def refresh_directory_users() -> None:
    """Deactivate directory users the directory has disabled or removed since they signed in."""
    from portal.admin.directory import DirectoryError
    from portal.admin.sign_in import refresh_directory_users as refresh

    try:
        refresh()
    except DirectoryError:
        db.session.rollback()  # unreachable now; the next round tries again
