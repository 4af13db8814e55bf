"""OpenID Connect sign-in: authorization code with PKCE against any provider; no Flask request.

Discovery reads the provider's /.well-known/openid-configuration; Authlib builds the
authorization URL and exchanges the code (with the PKCE verifier); joserfc checks the ID token's
signature against the provider's JWKS. Then this module checks, each with its own refusal: the
issuer, the audience (and `azp`), the expiry, and the `nonce` this sign-in sent. The `state` is
bound to the browser (its cookie) and to a row that is marked used at the first answer, so a
replayed answer is refused even with a copied cookie.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast
from urllib.parse import urlencode

import httpx
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete, update

from portal.admin.directory import split_list
from portal.admin.models import SignInState
from portal.admin.sign_in import ExternalIdentity
from portal.core.security import ROLES, hash_token
from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.projects.identity import project_roles

STATE_LIFETIME = timedelta(minutes=10)
CLOCK_SKEW = 60  # seconds of a provider's clock ahead or behind
METADATA_SECONDS = 300.0
ID_TOKEN_KEY = "oidc_id_token"  # in the session cookie: the hint for logout at the provider
_cache: dict[str, tuple[float, dict[str, Any]]] = {}


class OidcError(Exception):
    """A refused OpenID sign-in: `reason` for the audit record, `message` for the person."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str
    scopes: str = "openid profile email"
    username_claim: str = "preferred_username"
    roles_claim: str = "groups"
    role_values: dict[str, list[str]] | None = None
    project_values: str = ""  # PROJECT:ROLE=VALUE entries (portal.projects.identity)
    ca_certificate: str = ""

    @classmethod
    def from_settings(cls) -> OidcConfig:
        from portal.settings.service import get_setting

        return cls(
            issuer=get_setting("oidc_issuer"),
            client_id=get_setting("oidc_client_id"),
            client_secret=get_setting("oidc_client_secret") or "",
            scopes=get_setting("oidc_scopes") or "openid",
            username_claim=get_setting("oidc_username_claim") or "preferred_username",
            roles_claim=get_setting("oidc_roles_claim"),
            role_values={r: split_list(get_setting(f"oidc_{r}_values")) for r in ROLES},
            project_values=get_setting("oidc_project_values") or "",
            ca_certificate=get_setting("oidc_ca_certificate") or "",
        )

    def verify(self) -> ssl.SSLContext | bool:
        if not self.ca_certificate:
            return True
        return ssl.create_default_context(cadata=self.ca_certificate)


@dataclass(frozen=True)
class Pending:
    """What the browser keeps (encrypted in its cookie) between leaving and coming back."""

    state: str
    nonce: str
    verifier: str
    next: str | None = None


def button_label() -> str | None:
    """The login page's single sign-on button, when OpenID sign-in is on."""
    from portal.settings.service import get_setting

    return get_setting("oidc_button_label") if get_setting("oidc_enabled") else None


def discover(config: OidcConfig, refresh: bool = False) -> dict[str, Any]:
    """The provider's metadata, kept a few minutes."""
    if not config.issuer:
        raise OidcError("not_configured", "No OpenID provider is configured.")
    url = config.issuer.rstrip("/") + "/.well-known/openid-configuration"
    metadata = _get_json(config, url, refresh)
    if metadata.get("issuer") != config.issuer:
        raise OidcError(
            "issuer_mismatch",
            f"The provider calls itself {metadata.get('issuer')!r}, not {config.issuer!r}.",
        )
    return metadata


def _get_json(config: OidcConfig, url: str, refresh: bool = False) -> dict[str, Any]:
    cached = _cache.get(url)
    if cached and not refresh and time.monotonic() - cached[0] < METADATA_SECONDS:
        return cached[1]
    try:
        with httpx.Client(verify=config.verify(), timeout=10) as client:
            answer = client.get(url)
            answer.raise_for_status()
            document = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise OidcError("provider_unreachable", f"Cannot read {url}: {exc}") from None
    _cache[url] = (time.monotonic(), document)
    return document


def _client(config: OidcConfig, redirect_uri: str) -> OAuth2Client:
    return OAuth2Client(
        config.client_id,
        config.client_secret,
        scope=config.scopes,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        verify=config.verify(),
        timeout=10,
    )


def start(config: OidcConfig, redirect_uri: str, next_path: str | None) -> tuple[str, Pending]:
    """The provider's URL to send the browser to, and what the browser must bring back."""
    import secrets

    endpoint = discover(config)["authorization_endpoint"]
    pending = Pending(
        secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48), next_path
    )
    db.session.add(SignInState(state_hash=hash_token(pending.state)))
    db.session.commit()
    with _client(config, redirect_uri) as client:
        url, _ = client.create_authorization_url(
            endpoint, state=pending.state, nonce=pending.nonce, code_verifier=pending.verifier
        )
    return url, pending


def finish(
    config: OidcConfig, redirect_uri: str, answer: dict[str, str], pending: Pending | None
) -> tuple[ExternalIdentity, str]:
    """Check the provider's answer; the person it vouches for and the raw ID token."""
    if answer.get("error"):
        text = answer.get("error_description") or answer["error"]
        raise OidcError("provider_refused", f"The provider refused the sign-in: {text}.")
    _take_state(answer.get("state", ""), pending)
    assert pending is not None  # _take_state refuses otherwise
    metadata = discover(config)
    with _client(config, redirect_uri) as client:
        try:
            token = client.fetch_token(
                metadata["token_endpoint"],
                code=answer.get("code", ""),
                code_verifier=pending.verifier,
                grant_type="authorization_code",
            )
        except Exception as exc:  # Authlib raises several kinds; all mean "no"
            raise OidcError(
                "code_refused", f"The provider refused to exchange the code: {exc}"
            ) from None
    id_token = token.get("id_token")
    if not id_token:
        raise OidcError("no_id_token", "The provider answered without an ID token.")
    claims = verify_id_token(config, metadata, id_token, pending.nonce)
    claims = {**_userinfo(config, metadata, token, claims["sub"]), **claims}
    return _identity(config, claims), id_token


def _take_state(state: str, pending: Pending | None) -> None:
    """Refuse an answer this browser did not ask for, one already used, or one too old."""
    row = db.session.get(SignInState, hash_token(state)) if state else None
    if row is not None and row.used_at is not None:
        raise OidcError("replayed_state", "This sign-in answer was already used (replayed state).")
    if pending is None or not state or state != pending.state:
        raise OidcError(
            "state_mismatch",
            "This sign-in answer does not belong to a sign-in started in this browser.",
        )
    if row is None or utcnow() - row.created_at > STATE_LIFETIME:
        raise OidcError("state_expired", "This sign-in took too long; start again.")
    # Only one request can mark it: two copies of the answer arriving together, one loses.
    marked = db.session.execute(
        update(SignInState)
        .where(SignInState.state_hash == row.state_hash, SignInState.used_at.is_(None))
        .values(used_at=utcnow())
    ).rowcount
    db.session.commit()
    if not marked:
        raise OidcError("replayed_state", "This sign-in answer was already used (replayed state).")


def verify_id_token(
    config: OidcConfig, metadata: dict[str, Any], id_token: str, nonce: str
) -> dict[str, Any]:
    """The ID token's claims once its signature, issuer, audience, expiry and nonce hold."""
    algorithms = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = [a for a in algorithms if a != "none"]
    try:
        decoded = _decode(config, metadata, id_token, algorithms)
    except BadSignatureError:
        raise OidcError("bad_signature", "The ID token's signature does not verify.") from None
    except (JoseError, ValueError) as exc:
        raise OidcError("bad_token", f"The ID token cannot be read: {exc}") from None
    claims = decoded.claims
    _check_claims(config, metadata, claims, nonce)
    return claims


def signing_keys(config: OidcConfig, metadata: dict[str, Any]) -> int:
    """How many keys the provider publishes (refreshed); refuses a set that cannot be read."""
    try:
        return len(_key_set(_get_json(config, metadata["jwks_uri"], True)).keys)
    except (JoseError, ValueError, KeyError) as exc:
        raise OidcError("bad_keys", f"The provider's signing keys cannot be read: {exc}") from None


def _key_set(document: dict[str, Any]) -> KeySet:
    return KeySet.import_key_set(cast(Any, document))  # a JWKS document as the provider sent it


def _decode(
    config: OidcConfig, metadata: dict[str, Any], id_token: str, algorithms: list[str]
) -> Any:
    keys = _key_set(_get_json(config, metadata["jwks_uri"]))
    try:
        return jwt.decode(id_token, keys, algorithms=algorithms)
    except ValueError:  # a key id not in the cached set: the provider rotated its keys
        keys = _key_set(_get_json(config, metadata["jwks_uri"], refresh=True))
        return jwt.decode(id_token, keys, algorithms=algorithms)


def _check_claims(
    config: OidcConfig, metadata: dict[str, Any], claims: dict[str, Any], nonce: str
) -> None:
    if claims.get("iss") != metadata["issuer"]:
        raise OidcError("wrong_issuer", f"The ID token comes from {claims.get('iss')!r}.")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if config.client_id not in audiences or (
        len(audiences) > 1 and claims.get("azp") != config.client_id
    ):
        raise OidcError(
            "wrong_audience",
            f"The ID token is meant for {audience!r}, not for this Spectr ({config.client_id!r}).",
        )
    now = time.time()
    if not isinstance(claims.get("exp"), int | float) or claims["exp"] < now - CLOCK_SKEW:
        raise OidcError("expired_token", "The ID token has expired.")
    if claims.get("nonce") != nonce:
        raise OidcError("wrong_nonce", "The ID token's nonce is not the one this sign-in sent.")
    if not claims.get("sub"):
        raise OidcError("bad_token", "The ID token names no subject.")


def _userinfo(
    config: OidcConfig, metadata: dict[str, Any], token: dict[str, Any], sub: str
) -> dict[str, Any]:
    """Claims the provider gives only at its userinfo endpoint (groups, often)."""
    endpoint = metadata.get("userinfo_endpoint")
    if not endpoint or not token.get("access_token"):
        return {}
    try:
        with httpx.Client(verify=config.verify(), timeout=10) as client:
            answer = client.get(
                endpoint, headers={"Authorization": f"Bearer {token['access_token']}"}
            )
            answer.raise_for_status()
            info = answer.json()
    except (httpx.HTTPError, ValueError):
        return {}  # the ID token alone still identifies the person
    return info if info.get("sub") == sub else {}


def _identity(config: OidcConfig, claims: dict[str, Any]) -> ExternalIdentity:
    username = str(claims.get(config.username_claim) or claims.get("email") or claims["sub"])[:80]
    held = claims.get(config.roles_claim) if config.roles_claim else None
    values = {str(v) for v in (held if isinstance(held, list) else str(held or "").split())}
    role = next(
        (r for r in reversed(ROLES) if values & set((config.role_values or {}).get(r, []))),
        None,
    )
    mapped = project_roles(config.project_values, values)
    return ExternalIdentity("oidc", f"{claims['iss']}|{claims['sub']}", username, role, mapped)


def forget_old_sign_in_states() -> int:
    """Drop states no answer can use any more (a replay of those is refused as unknown)."""
    cutoff = utcnow() - STATE_LIFETIME * 6
    return db.session.execute(delete(SignInState).where(SignInState.created_at < cutoff)).rowcount


def end_session_url(id_token: str | None, back_to: str) -> str | None:
    """Where to send the browser to sign out at the provider too, if it offers that."""
    if not id_token:
        return None
    config = OidcConfig.from_settings()
    try:
        endpoint = discover(config).get("end_session_endpoint")
    except OidcError:
        return None
    if not endpoint:
        return None
    query = {"id_token_hint": id_token, "post_logout_redirect_uri": back_to}
    query["client_id"] = config.client_id
    return f"{endpoint}?{urlencode(query)}"
