"""What a rotation checks on an agent over mutual TLS: the certificate a new connection gets,
and which tokens it accepts. Each check retries for a while: a reload takes effect a moment
after the signal."""

from __future__ import annotations

import socket
import ssl
import time
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization

CHECK_DEADLINE_S = 15.0  # the role already waited until the agent serves the new certificate
_CHECK_TIMEOUT_S = 5.0


def check_new_credentials(
    agent_url: str, certificate_pem: str, token: str, context: ssl.SSLContext
) -> str | None:
    """None once the agent serves `certificate_pem` and accepts `token`, else why not."""
    wanted = x509.load_pem_x509_certificate(certificate_pem.encode()).public_bytes(
        serialization.Encoding.DER
    )
    deadline, problem = time.monotonic() + CHECK_DEADLINE_S, "no check ran"
    while time.monotonic() < deadline:
        try:
            if served_certificate(agent_url, context) != wanted:
                problem = "the agent still serves its old certificate"
            elif (status := health_status(agent_url, token, context)) != 200:
                problem = f"the agent answers the new token with HTTP {status}"
            else:
                return None
        except (OSError, httpx.HTTPError) as error:
            problem = f"the agent does not answer over mutual TLS: {error}"
        time.sleep(0.5)
    return problem


def check_old_token_refused(
    agent_url: str, token: str, old_token: str, context: ssl.SSLContext
) -> str | None:
    """None once `old_token` is refused while `token` still works, else why not."""
    deadline, problem = time.monotonic() + CHECK_DEADLINE_S, "no check ran"
    while time.monotonic() < deadline:
        try:
            if (status := health_status(agent_url, token, context)) != 200:
                return f"the agent answers the new token with HTTP {status} after retiring the old"
            # One refused attempt only: the agent counts failures per address (back-off).
            if health_status(agent_url, old_token, context) == 401:
                return None
            problem = "the agent still accepts the old token"
        except (OSError, httpx.HTTPError) as error:
            problem = f"the agent does not answer over mutual TLS: {error}"
        time.sleep(0.5)
    return problem


def served_certificate(agent_url: str, context: ssl.SSLContext) -> bytes:
    """The DER certificate a new TLS connection to the agent gets."""
    parts = urlsplit(agent_url)
    hostname, port = parts.hostname or "", parts.port or 443
    with (
        socket.create_connection((hostname, port), timeout=_CHECK_TIMEOUT_S) as raw,
        context.wrap_socket(raw, server_hostname=hostname) as tls,
    ):
        return tls.getpeercert(binary_form=True) or b""


def health_status(agent_url: str, token: str, context: ssl.SSLContext) -> int:
    """HTTP status of GET /v1/health with `token` on a new connection."""
    with httpx.Client(base_url=agent_url, verify=context, timeout=_CHECK_TIMEOUT_S,
                      trust_env=False) as client:  # fmt: skip
        return client.get("/v1/health", headers={"Authorization": f"Bearer {token}"}).status_code
