"""Sign-in against an LDAP directory or Active Directory, through ldap3; no Flask request here.

Search-then-bind: a service account finds the user's entry by the typed name, then a second
connection binds as that entry with the typed password. TLS is LDAPS or StartTLS, verified
against the configured CA. Groups come from `memberOf`, from the groups that name the user as
`member` / `uniqueMember` (nested groups followed here, so plain OpenLDAP works), or from Active
Directory's LDAP_MATCHING_RULE_IN_CHAIN, which resolves nesting on the server.

Every failure is a `DirectoryError` whose `reason` is one word (for the audit record) and whose
message says what failed, in the words an admin needs to fix it.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field

from ldap3 import NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from portal.core.security import ROLES

IN_CHAIN = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN (Active Directory only)
NESTING_LIMIT = 8  # group-in-group levels followed in "member" mode


class DirectoryError(Exception):
    """A sign-in or a test that the directory refused or could not answer."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class DirectoryConfig:
    url: str
    start_tls: bool = True
    ca_certificate: str = ""
    bind_dn: str = ""
    bind_password: str = ""
    user_base: str = ""
    user_filter: str = "(objectClass=person)"
    login_attribute: str = "uid"
    group_mode: str = "member"
    group_base: str = ""
    role_groups: dict[str, list[str]] = field(default_factory=dict)
    project_groups: str = ""  # PROJECT:ROLE=GROUP DN entries (portal.projects.identity)
    timeout: int = 10  # seconds; ldap3 packs it into a socket option, so a whole number

    @classmethod
    def from_settings(cls) -> DirectoryConfig:
        """The directory as configured on the Sign-in page."""
        from portal.settings.service import get_setting

        return cls(
            url=get_setting("ldap_url"),
            start_tls=get_setting("ldap_start_tls"),
            ca_certificate=get_setting("ldap_ca_certificate") or "",
            bind_dn=get_setting("ldap_bind_dn"),
            bind_password=get_setting("ldap_bind_password") or "",
            user_base=get_setting("ldap_user_base"),
            user_filter=get_setting("ldap_user_filter") or "(objectClass=*)",
            login_attribute=get_setting("ldap_login_attribute") or "uid",
            group_mode=get_setting("ldap_group_mode"),
            group_base=get_setting("ldap_group_base"),
            role_groups={role: split_list(get_setting(f"ldap_{role}_groups")) for role in ROLES},
            project_groups=get_setting("ldap_project_groups") or "",
        )


@dataclass(frozen=True)
class DirectoryAccount:
    """What the directory says about a user who proved their password (or was looked up)."""

    dn: str
    username: str
    groups: list[str]
    role: str | None  # None: no configured group gives a role


def split_list(text: str | None) -> list[str]:
    """Values separated by ";" (DNs hold commas), blanks dropped."""
    return [item.strip() for item in (text or "").split(";") if item.strip()]


def normalize_dn(dn: str) -> str:
    """Compare DNs as a directory does: case and spaces around separators do not matter."""
    parts = [part.strip() for part in dn.split(",")]
    return ",".join("=".join(side.strip() for side in part.split("=", 1)) for part in parts).lower()


def role_for_groups(groups: Iterable[str], role_groups: dict[str, list[str]]) -> str | None:
    """The highest role one of the user's groups is mapped to."""
    held = {normalize_dn(group) for group in groups}
    for role in reversed(ROLES):
        if held & {normalize_dn(group) for group in role_groups.get(role, [])}:
            return role
    return None


def authenticate(config: DirectoryConfig, username: str, password: str) -> DirectoryAccount:
    """Find `username`, bind as it with `password`, read its groups and role."""
    if not password:
        # An empty password is an "unauthenticated bind", which directories accept: never a proof.
        raise DirectoryError("wrong_password", "The password is empty.")
    with _service_connection(config) as conn:
        dn, allowed, attributes = _find_user(conn, config, username)
        _bind_as_user(config, dn, password)
        if not allowed:
            raise DirectoryError(
                "disabled", "The directory disables this account (outside the user filter)."
            )
        groups = _groups(conn, config, dn, attributes)
    return DirectoryAccount(dn, username, groups, role_for_groups(groups, config.role_groups))


def look_up(config: DirectoryConfig, username: str) -> DirectoryAccount:
    """What the directory says about `username` without its password (the test action)."""
    with _service_connection(config) as conn:
        dn, allowed, attributes = _find_user(conn, config, username)
        if not allowed:
            raise DirectoryError(
                "disabled", f"{dn} exists but the directory disables it (outside the user filter)."
            )
        groups = _groups(conn, config, dn, attributes)
    return DirectoryAccount(dn, username, groups, role_for_groups(groups, config.role_groups))


def still_enabled(config: DirectoryConfig, dn: str) -> bool:
    """Whether the entry `dn` still exists and matches the user filter."""
    with _service_connection(config) as conn:
        conn.search(dn, config.user_filter, "BASE", attributes=[])
        return bool(conn.entries)


def check_connection(config: DirectoryConfig) -> list[str]:
    """Connect, secure and bind as the service account; the steps that worked."""
    steps: list[str] = []
    with _service_connection(config, steps) as conn:
        conn.search(config.user_base, config.user_filter, SUBTREE, attributes=[], size_limit=1)
        if conn.result.get("result") not in (0, 4):  # 4: size limit reached, still fine
            raise DirectoryError(
                "search_failed",
                f"Searching {config.user_base!r} failed: {conn.result.get('description')} "
                f"{conn.result.get('message') or ''}".strip(),
            )
        steps.append(f"searched {config.user_base} with {config.user_filter}")
    return steps


class _service_connection:
    """A connection bound as the service account, closed on exit."""

    def __init__(self, config: DirectoryConfig, steps: list[str] | None = None) -> None:
        self.config = config
        self.steps = steps if steps is not None else []

    def __enter__(self) -> Connection:
        config = self.config
        if not config.url:
            raise DirectoryError("not_configured", "No directory URL is set.")
        self.conn = _open(config, config.bind_dn or None, config.bind_password or None, self.steps)
        if not self.conn.bind():
            self.conn.unbind()
            raise DirectoryError(
                "service_bind_failed",
                f"The service account {config.bind_dn!r} cannot bind: "
                f"{_describe(self.conn.result)}.",
            )
        self.steps.append(f"bound as {config.bind_dn or 'anonymous'}")
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.unbind()


def _server(config: DirectoryConfig) -> Server:
    tls = Tls(
        validate=ssl.CERT_REQUIRED,
        version=ssl.PROTOCOL_TLS_CLIENT,
        ca_certs_data=config.ca_certificate or None,
    )
    return Server(
        config.url,
        use_ssl=config.url.lower().startswith("ldaps://"),
        tls=tls,
        get_info=NONE,
        connect_timeout=config.timeout,
    )


def _open(
    config: DirectoryConfig, user: str | None, password: str | None, steps: list[str]
) -> Connection:
    conn = Connection(
        _server(config),
        user=user,
        password=password,
        receive_timeout=config.timeout,
        raise_exceptions=False,
        read_only=True,
    )
    try:
        conn.open()
        steps.append(f"connected to {config.url}")
        if config.url.lower().startswith("ldaps://"):
            steps.append("TLS certificate verified")
        elif config.start_tls:
            if not conn.start_tls():
                raise DirectoryError(
                    "start_tls_failed", f"StartTLS refused: {_describe(conn.result)}."
                )
            steps.append("StartTLS done, certificate verified")
    except LDAPException as exc:
        _close(conn)
        raise _connection_error(config, exc) from None
    except DirectoryError:
        _close(conn)
        raise
    return conn


def _close(conn: Connection) -> None:
    """Close a connection that may already be broken (a failed TLS handshake closes it)."""
    try:
        conn.unbind()
    except LDAPException:
        if conn.socket is not None:
            conn.socket.close()


def _connection_error(config: DirectoryConfig, exc: Exception) -> DirectoryError:
    text = str(exc)
    if "certificate has expired" in text:
        return DirectoryError(
            "certificate_expired", f"The TLS certificate of {config.url} has expired."
        )
    if "hostname mismatch" in text or "doesn't match" in text or "IP address mismatch" in text:
        return DirectoryError(
            "certificate_name", f"The TLS certificate of {config.url} is for another name."
        )
    if "certificate verify failed" in text:
        return DirectoryError(
            "certificate_untrusted",
            f"The TLS certificate of {config.url} is not signed by the configured CA.",
        )
    return DirectoryError("unreachable", f"Cannot reach {config.url}: {_first_line(text)}.")


def _find_user(conn: Connection, config: DirectoryConfig, username: str) -> tuple[str, bool, dict]:
    """The user's DN, whether the user filter allows it, and its attributes."""
    attribute = config.login_attribute
    by_name = f"({attribute}={escape_filter_chars(username)})"
    wanted = ["memberOf"] if config.group_mode == "memberof" else []
    for allowed, query in ((True, f"(&{config.user_filter}{by_name})"), (False, by_name)):
        found = conn.search(config.user_base, query, SUBTREE, attributes=wanted, size_limit=2)
        if not found and conn.result.get("result") not in (0, 4, 32):  # 32: no such base
            raise DirectoryError(
                "search_failed", f"Searching users failed: {_describe(conn.result)}."
            )
        if len(conn.entries) > 1:
            raise DirectoryError(
                "ambiguous", f"More than one entry has {attribute}={username}: refused."
            )
        if conn.entries:
            entry = conn.entries[0]
            return entry.entry_dn, allowed, entry.entry_attributes_as_dict
    raise DirectoryError(
        "unknown_user", f"No entry with {attribute}={username} under {config.user_base}."
    )


def _bind_as_user(config: DirectoryConfig, dn: str, password: str) -> None:
    conn = _open(config, dn, password, [])
    try:
        if not conn.bind():
            reason = "wrong_password" if conn.result.get("result") == 49 else "user_bind_failed"
            raise DirectoryError(
                reason, f"The directory refused the password of {dn}: {_describe(conn.result)}."
            )
    finally:
        conn.unbind()


def _groups(conn: Connection, config: DirectoryConfig, dn: str, attributes: dict) -> list[str]:
    if config.group_mode == "memberof":
        return [str(value) for value in attributes.get("memberOf", [])]
    if config.group_mode == "ad_nested":
        return _search_groups(conn, config, f"(member:{IN_CHAIN}:={escape_filter_chars(dn)})")
    return _nested_member_groups(conn, config, dn)


def _nested_member_groups(conn: Connection, config: DirectoryConfig, dn: str) -> list[str]:
    """Groups naming `dn`, then groups naming those, and so on (OpenLDAP has no IN_CHAIN)."""
    found: dict[str, str] = {}
    members = [dn]
    for _ in range(NESTING_LIMIT):
        terms = "".join(
            f"(member={escape_filter_chars(m)})(uniqueMember={escape_filter_chars(m)})"
            for m in members
        )
        new = [
            g for g in _search_groups(conn, config, f"(|{terms})") if normalize_dn(g) not in found
        ]
        if not new:
            break
        found.update({normalize_dn(g): g for g in new})
        members = new
    return list(found.values())


def _search_groups(conn: Connection, config: DirectoryConfig, query: str) -> list[str]:
    base = config.group_base or config.user_base
    conn.search(base, query, SUBTREE, attributes=[])
    if conn.result.get("result") not in (0, 4):
        raise DirectoryError("search_failed", f"Searching groups failed: {_describe(conn.result)}.")
    return [entry.entry_dn for entry in conn.entries]


def _describe(result: dict | None) -> str:
    result = result or {}
    words = result.get("description") or "no answer"
    detail = (result.get("message") or "").strip()
    return f"{words} ({detail})" if detail else str(words)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else "no detail"
