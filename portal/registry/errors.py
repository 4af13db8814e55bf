"""Errors of talking to a registry, each with a sentence that says what to fix."""

from __future__ import annotations

from portal.core.errors import NotFound, SpectrError, UpstreamUnavailable


class RegistryUnreachable(UpstreamUnavailable):
    code = "registry_unreachable"
    transient = True  # an operation meeting it is retried with backoff


class RegistryReadOnly(UpstreamUnavailable):
    """The registry refuses writes for now (garbage collection or maintenance): retry later."""

    code = "registry_read_only"
    transient = True


class RegistryTlsFailed(UpstreamUnavailable):
    code = "registry_tls_failed"


class RegistryAuthFailed(SpectrError):
    """The registry refused the credentials (401) or the account lacks rights (403)."""

    status = 502
    code = "registry_auth_failed"


class RegistryAnswerError(SpectrError):
    """The registry answered, but not as the Registry HTTP API v2 says it should."""

    status = 502
    code = "registry_error"


class RegistryNotFound(NotFound):
    code = "not_found"
