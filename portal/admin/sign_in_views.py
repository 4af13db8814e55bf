"""Sign-in pages beyond the password form: the TOTP code step and the OpenID Connect round trip.

What a half-finished sign-in needs between two requests lives in the session cookie, sealed with
the portal's SecretBox (the PKCE verifier and nonce are secrets until the sign-in ends).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import login_user

from portal.admin import oidc, sessions, sign_in, totp
from portal.admin.authentication import LoginUser
from portal.admin.models import User
from portal.core.audit import record_audit
from portal.core.secrets_box import secret_box
from portal.core.timeutil import utcnow
from portal.extensions import csrf, db

bp = Blueprint("sign_in", __name__, url_prefix="/login")
CODE_KEY = "sign_in_code_pending"
SSO_KEY = "sign_in_sso_pending"
CODE_STEP_SECONDS = 300  # a password proven this long ago still counts for the code step


def complete_sign_in(user: User, method: str, next_path: str | None, **cookie: Any) -> Any:
    """Open a session for `user`, audit it, and go where the person was heading."""
    token = sessions.start_session(user, request.remote_addr, request.user_agent.string)
    user.last_login_at = utcnow()
    login_user(LoginUser(user, token))
    session.update(cookie)
    record_audit("session.login", f"user:{user.username}", details={"method": method})
    db.session.commit()
    return redirect(safe_next(next_path))


def ask_for_code(user: User, next_path: str | None) -> Any:
    """The password was right and the user has TOTP on: ask for the code next."""
    session[CODE_KEY] = _seal({"user": user.id, "at": time.time(), "next": next_path})
    return redirect(url_for("sign_in.code"))


@bp.route("/code", methods=["GET", "POST"])
def code() -> Any:
    pending = _unseal(session.get(CODE_KEY))
    if not pending or time.time() - pending["at"] > CODE_STEP_SECONDS:
        session.pop(CODE_KEY, None)
        flash("Sign in again: the password step is too old.", "error")
        return redirect(url_for("web.login"))
    if request.method == "GET":
        return render_template("login_code.html")
    csrf.protect()
    user = db.session.get(User, pending["user"])
    if user is None or not user.active:
        session.pop(CODE_KEY, None)
        return redirect(url_for("web.login"))
    lock = sessions.sign_in_lock(user.username, request.remote_addr)
    if lock is not None or not totp.code_is_right(user, request.form.get("code", "")):
        reason = "throttled" if lock else "totp_wrong"
        message = (
            f"Too many failed sign-ins. Try again in {lock.retry_after} s."
            if lock
            else "The code is wrong or expired: type the code your app shows now."
        )
        sign_in.record_refusal(
            sign_in.SignInRefused(reason, message, user.username, "totp"), request.remote_addr
        )
        flash(message, "error")
        return render_template("login_code.html"), 429 if lock else 401
    session.pop(CODE_KEY, None)
    sessions.record_success(user.username, request.remote_addr)
    return complete_sign_in(user, "local+totp", pending.get("next"))


@bp.get("/sso")
def sso() -> Any:
    """Send the browser to the OpenID provider."""
    if not oidc.button_label():
        flash("Single sign-on is not configured.", "error")
        return redirect(url_for("web.login"))
    try:
        url, pending = oidc.start(
            oidc.OidcConfig.from_settings(), _callback_url(), request.args.get("next")
        )
    except oidc.OidcError as exc:
        return _refuse(sign_in.SignInRefused(exc.reason, exc.message, "sso", "oidc"))
    session[SSO_KEY] = _seal(asdict(pending))
    return redirect(url)


@bp.get("/sso/callback")
def sso_callback() -> Any:
    """The provider sends the browser back here with a code (or an error)."""
    sealed = session.pop(SSO_KEY, None)
    raw = _unseal(sealed)
    pending = oidc.Pending(**raw) if raw else None
    config = oidc.OidcConfig.from_settings()
    try:
        identity, id_token = oidc.finish(config, _callback_url(), request.args.to_dict(), pending)
        user = sign_in.provision(identity)
    except oidc.OidcError as exc:
        return _refuse(sign_in.SignInRefused(exc.reason, exc.message, "sso", "oidc"))
    except sign_in.SignInRefused as refusal:
        return _refuse(refusal)
    return complete_sign_in(
        user, "oidc", pending.next if pending else None, **{oidc.ID_TOKEN_KEY: id_token}
    )


def _refuse(refusal: sign_in.SignInRefused) -> Any:
    db.session.rollback()
    sign_in.record_refusal(refusal, request.remote_addr)
    flash(f"Single sign-on failed: {refusal.message}", "error")
    return render_template("login.html", sso=oidc.button_label()), 401


def _callback_url() -> str:
    return url_for("sign_in.sso_callback", _external=True)


def _seal(values: dict[str, Any]) -> str:
    return secret_box().encrypt(json.dumps(values))


def _unseal(sealed: str | None) -> dict[str, Any] | None:
    if not sealed:
        return None
    try:
        return json.loads(secret_box().decrypt(sealed))
    except ValueError:
        return None


def safe_next(target: str | None) -> str:
    """Follow only a path on this site; anything a browser could read as another site goes home."""
    if not target:
        return url_for("web.home")
    # Browsers drop tabs, newlines (all control characters here) and read backslashes as slashes.
    cleaned = "".join(c for c in target if c >= " ").replace("\\", "/")
    parts = urlsplit(cleaned)
    if parts.scheme or parts.netloc or not cleaned.startswith("/") or cleaned.startswith("//"):
        return url_for("web.home")
    return cleaned
