"""A small client of the Registry HTTP API v2 (distribution, Harbor, GitLab) on httpx.

Basic auth and the Bearer token service are both handled: on a 401 challenge the client asks
the realm for a token scoped to the repository and retries once. Large bodies stream; nothing
here holds a blob in memory.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from portal.registry.errors import (
    RegistryAnswerError,
    RegistryAuthFailed,
    RegistryNotFound,
    RegistryReadOnly,
    RegistryTlsFailed,
    RegistryUnreachable,
)

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
INDEX_TYPES = (MANIFEST_LIST, OCI_INDEX)
ACCEPT_MANIFESTS = ", ".join((OCI_INDEX, MANIFEST_LIST, OCI_MANIFEST, MANIFEST_V2))
CHUNK = 1024 * 1024


@dataclass
class Credentials:
    url: str
    username: str | None = None
    password: str | None = None
    ca_pem: str | None = None


@dataclass
class Page:
    items: list[str]
    next_last: str | None  # pass as `last` to get the next page; None on the last page


class TokenServiceAuth(httpx.Auth):
    """Basic auth, or a Bearer token from the realm named by the registry's challenge."""

    # False: httpx would otherwise read every response whole, a streamed blob included. The
    # token response is read below, and httpx reads the 401 it retries after by itself.
    requires_response_body = False

    def __init__(self, username: str | None, password: str | None) -> None:
        self._basic = httpx.BasicAuth(username, password or "") if username else None
        self._tokens: dict[str, str] = {}
        self._basic_accepted = False  # once the registry asked for Basic, send it every time

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        scope = _scope_of(request)
        if self._basic_accepted and self._basic:
            request.headers["Authorization"] = self._basic._auth_header
        elif scope in self._tokens:
            request.headers["Authorization"] = self._tokens[scope]
        response = yield request
        if response.status_code != 401:
            return
        scheme, params = parse_challenge(response.headers.get("www-authenticate", ""))
        if scheme == "basic" and self._basic and not self._basic_accepted:
            self._basic_accepted = True
            self._tokens[scope] = self._basic._auth_header
        elif scheme == "bearer" and "realm" in params:
            token_response = yield self._token_request(params, scope)
            if token_response.status_code != 200:
                return
            token_response.read()
            body = token_response.json()
            self._tokens[scope] = "Bearer " + (body.get("token") or body.get("access_token", ""))
        else:
            return
        request.headers["Authorization"] = self._tokens[scope]
        yield request

    def _token_request(self, params: dict[str, str], scope: str) -> httpx.Request:
        query = {"service": params.get("service", "")}
        if scope or params.get("scope"):
            query["scope"] = scope or params["scope"]
        token_request = httpx.Request("GET", params["realm"], params=query)
        if self._basic:
            token_request.headers["Authorization"] = self._basic._auth_header
        return token_request


def _scope_of(request: httpx.Request) -> str:
    match = re.match(r"^/v2/(.+?)/(manifests|blobs|tags)/", request.url.path)
    if not match:
        return "registry:catalog:*" if request.url.path.startswith("/v2/_catalog") else ""
    action = "pull" if request.method in ("GET", "HEAD") else "pull,push,delete"
    return f"repository:{match.group(1)}:{action}"


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """Split a WWW-Authenticate header into its scheme and parameters."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', rest))


def next_last_from_link(header: str | None) -> str | None:
    """Return the `last` cursor of the next page named by a Link header, or None."""
    match = re.search(r"<([^>]+)>\s*;\s*rel=\"?next\"?", header or "")
    if not match:
        return None
    return httpx.URL(match.group(1)).params.get("last")


class RegistryClient:
    """Talk to one registry; errors come out as portal.registry.errors with clear messages."""

    def __init__(self, credentials: Credentials, timeout: float = 30.0) -> None:
        self.url = credentials.url.rstrip("/")
        verify: Any = True
        if credentials.ca_pem:
            verify = ssl.create_default_context(cadata=credentials.ca_pem)
        self._http = httpx.Client(
            base_url=self.url,
            auth=TokenServiceAuth(credentials.username, credentials.password),
            verify=verify,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            follow_redirects=True,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(self, method: str, path: str, expect: tuple[int, ...] = (200,), **kw: Any) -> Any:
        """Send one request; map transport failures and unexpected statuses to errors."""
        try:
            response = self._http.request(method, path, **kw)
        except httpx.ConnectError as exc:
            raise self._connect_error(exc) from exc
        except httpx.TimeoutException as exc:
            raise RegistryUnreachable(f"Registry {self.url} did not answer in time.") from exc
        except httpx.TransportError as exc:
            raise RegistryUnreachable(f"Cannot talk to registry {self.url}: {exc}.") from exc
        if response.status_code not in expect:
            raise self._status_error(method, path, response)
        return response

    def _connect_error(self, exc: Exception) -> Exception:
        text = str(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text or "certificate" in text:
            return RegistryTlsFailed(
                f"TLS handshake with {self.url} failed: the registry's certificate is not "
                f"trusted (give the CA that signed it) or does not match the address ({text})."
            )
        return RegistryUnreachable(f"Cannot reach registry {self.url}: {text}.")

    def _status_error(self, method: str, path: str, response: httpx.Response) -> Exception:
        status = response.status_code
        if status == 401:
            return RegistryAuthFailed(
                f"Registry {self.url} refused the credentials (401 Unauthorized): "
                "check the username and password."
            )
        if status == 403:
            return RegistryAuthFailed(
                f"Registry {self.url} denied {method} {path} (403 Forbidden): "
                "the account lacks the rights for it."
            )
        if status == 404:
            return RegistryNotFound(f"{path} does not exist on registry {self.url}.")
        if status == 405 and method not in _allowed(response):
            # distribution in read-only mode routes only GET and HEAD: 405 with an Allow header.
            return RegistryReadOnly(
                f"Registry {self.url} is read-only for now (405 to {method} {path}): it is being "
                "garbage-collected or is under maintenance; retry in a minute."
            )
        if status == 405 and method == "DELETE":
            return RegistryAnswerError(
                f"Registry {self.url} does not allow deleting (405): enable storage.delete."
            )
        body = response.text[:300] if not response.is_stream_consumed else ""
        return RegistryAnswerError(
            f"Registry {self.url} answered {status} to {method} {path}: {body}".strip(),
            {"status": status},
        )

    def ping(self) -> str:
        """Check that the registry speaks API v2 and takes the credentials; return its version."""
        response = self.request("GET", "/v2/")
        return response.headers.get("docker-distribution-api-version", "registry/2.0")

    def repositories(self, n: int = 100, last: str | None = None) -> Page:
        """One page of the catalog of repositories."""
        return self._page("/v2/_catalog", "repositories", n, last)

    def tags(self, repository: str, n: int = 100, last: str | None = None) -> Page:
        """One page of a repository's tags."""
        return self._page(f"/v2/{repository}/tags/list", "tags", n, last)

    def all_tags(self, repository: str) -> list[str]:
        tags: list[str] = []
        last: str | None = None
        while True:
            page = self.tags(repository, 1000, last)
            tags.extend(page.items)
            if not page.next_last:
                return tags
            last = page.next_last

    def _page(self, path: str, key: str, n: int, last: str | None) -> Page:
        params: dict[str, Any] = {"n": n}
        if last:
            params["last"] = last
        response = self.request("GET", path, params=params)
        items = response.json().get(key) or []
        if len(items) <= n:
            return Page(items, next_last_from_link(response.headers.get("link")))
        # The registry ignored n/last (distribution 2.x does for tags): page here, sorted.
        remaining = sorted(item for item in items if last is None or item > last)
        return Page(remaining[:n], remaining[n - 1] if len(remaining) > n else None)

    def manifest(self, repository: str, reference: str) -> tuple[str, bytes, str]:
        """Return (media type, raw body, digest) of a manifest by tag or digest."""
        response = self.request(
            "GET", f"/v2/{repository}/manifests/{reference}", headers={"Accept": ACCEPT_MANIFESTS}
        )
        media_type = response.headers.get("content-type", MANIFEST_V2).split(";")[0]
        digest = response.headers.get("docker-content-digest") or _sha256(response.content)
        return media_type, response.content, digest

    def manifest_digest(self, repository: str, reference: str) -> str:
        response = self.request(
            "HEAD", f"/v2/{repository}/manifests/{reference}", headers={"Accept": ACCEPT_MANIFESTS}
        )
        return response.headers["docker-content-digest"]

    def blob_json(self, repository: str, digest: str) -> dict[str, Any]:
        return self.request("GET", f"/v2/{repository}/blobs/{digest}").json()

    def delete_manifest(self, repository: str, digest: str) -> None:
        self.request("DELETE", f"/v2/{repository}/manifests/{digest}", expect=(202, 200))

    def put_manifest(self, repository: str, reference: str, media_type: str, body: bytes) -> None:
        self.request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            content=body,
            headers={"Content-Type": media_type},
            expect=(201, 200),
        )

    def blob_exists(self, repository: str, digest: str) -> bool:
        response = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", expect=(200, 404))
        return response.status_code == 200

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        response = self.request(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            params={"mount": digest, "from": from_repository},
            expect=(201, 202),
        )
        return response.status_code == 201

    def stream_blob(self, repository: str, digest: str) -> Iterator[bytes]:
        """Yield a blob's bytes in chunks, straight from the network."""
        try:
            with self._http.stream("GET", f"/v2/{repository}/blobs/{digest}") as response:
                if response.status_code != 200:
                    response.read()
                    raise self._status_error("GET", f"/v2/{repository}/blobs/{digest}", response)
                yield from response.iter_bytes(CHUNK)
        except httpx.TransportError as exc:
            raise RegistryUnreachable(f"Lost registry {self.url} while reading: {exc}.") from exc

    def upload_blob(self, repository: str, digest: str, chunks: Iterator[bytes]) -> None:
        """Upload a blob whose digest is known, streaming the chunks (monolithic PUT)."""
        start = self.request("POST", f"/v2/{repository}/blobs/uploads/", expect=(202,))
        location = httpx.URL(start.headers["location"])
        location = self._http.base_url.join(location).copy_merge_params({"digest": digest})
        self.request("PUT", str(location), content=chunks, expect=(201,))


def _allowed(response: httpx.Response) -> set[str]:
    """The methods a 405 answer's Allow header names; every method when it names none."""
    allow = response.headers.get("allow")
    if not allow:
        return {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}
    return {item.strip().upper() for item in allow.split(",")}


def _sha256(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()
