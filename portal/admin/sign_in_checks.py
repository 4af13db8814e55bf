"""The admin's "test connection / test user" actions for the directory and the OpenID provider.

Each answers what worked, step by step, and the first step that failed with its reason, so an
admin can fix the setting that is wrong before anyone is locked out. Every run is audited.
"""

from __future__ import annotations

from typing import Any

from portal.admin import directory, oidc
from portal.core.audit import record_audit
from portal.extensions import db


def check_directory(username: str | None, password: str | None) -> dict[str, Any]:
    """Connect, secure and bind as the service account; then find (or sign in) `username`."""
    config = directory.DirectoryConfig.from_settings()
    steps: list[str] = []
    answer: dict[str, Any] = {"ok": True, "steps": steps, "reason": None, "message": None}
    try:
        steps.extend(directory.check_connection(config))
        if username:
            answer["user"] = _found(config, username, password, steps)
    except directory.DirectoryError as exc:
        answer.update(ok=False, reason=exc.reason, message=exc.message)
    outcome = "success" if answer["ok"] else f"failed ({answer['reason']})"
    record_audit("sign_in.directory.test", "settings:ldap", outcome, {"username": username})
    db.session.commit()
    return answer


def _found(
    config: directory.DirectoryConfig, username: str, password: str | None, steps: list[str]
) -> dict[str, Any]:
    if password:
        account = directory.authenticate(config, username, password)
        steps.append(f"{account.dn} signed in with the password given")
    else:
        account = directory.look_up(config, username)
        steps.append(f"found {account.dn}")
    if account.role is None:
        raise directory.DirectoryError(
            "no_role", f"{account.dn} is in no group mapped to a role: {account.groups or 'none'}."
        )
    steps.append(f"role {account.role} from its groups")
    return {"dn": account.dn, "groups": account.groups, "role": account.role}


def check_sso() -> dict[str, Any]:
    """Read the provider's discovery document and signing keys; check it offers PKCE."""
    config = oidc.OidcConfig.from_settings()
    steps: list[str] = []
    answer: dict[str, Any] = {"ok": True, "steps": steps, "reason": None, "message": None}
    try:
        metadata = oidc.discover(config, refresh=True)
        steps.append(f"discovered {metadata['issuer']}")
        keys = oidc.signing_keys(config, metadata)
        steps.append(f"{keys} signing key(s) at {metadata['jwks_uri']}")
        if "S256" not in metadata.get("code_challenge_methods_supported", ["S256"]):
            raise oidc.OidcError("no_pkce", "The provider does not offer PKCE with S256.")
        steps.append("PKCE with S256 offered")
    except oidc.OidcError as exc:
        answer.update(ok=False, reason=exc.reason, message=exc.message)
    outcome = "success" if answer["ok"] else f"failed ({answer['reason']})"
    record_audit("sign_in.sso.test", "settings:oidc", outcome)
    db.session.commit()
    return answer
