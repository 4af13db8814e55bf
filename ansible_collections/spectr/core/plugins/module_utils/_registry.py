# Copyright (c) Spectr authors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
#
# This module_utils is PRIVATE to spectr.core: its API may change without notice.
"""A small client for the Docker Registry HTTP API v2 (distribution), on ansible's urls."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import tempfile

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import urlencode
from ansible.module_utils.urls import open_url

MANIFEST_LIST_TYPES = (
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)
IMAGE_MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
ACCEPT_MANIFESTS = ", ".join(MANIFEST_LIST_TYPES + IMAGE_MANIFEST_TYPES)
CHUNK = 1024 * 1024


class RegistryError(Exception):
    """A registry answered with an error, or could not be reached."""


def registry_auth_argument_spec():
    """Options every registry module takes to reach and authenticate to a registry."""
    return dict(
        registry_url=dict(type="str", required=True),
        username=dict(type="str"),
        password=dict(type="str", no_log=True),
        token=dict(type="str", no_log=True),
        ca_path=dict(type="path"),
        validate_certs=dict(type="bool", default=True),
        timeout=dict(type="int", default=60),
    )


def parse_challenge(header):
    """Split a WWW-Authenticate header into its scheme and parameters."""
    scheme, dummy, rest = (header or "").strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


def parse_next_link(header):
    """Return the path of the next page from a Link header, or None."""
    match = re.search(r"<([^>]+)>\s*;\s*rel=\"?next\"?", header or "")
    return match.group(1) if match else None


def normalise_registry_url(url):
    """Check the scheme and drop a trailing slash."""
    if not url.startswith(("https://", "http://")):
        raise RegistryError("registry_url must start with https:// or http://: %r" % url)
    return url.rstrip("/")


class Response(object):
    """Status, headers and body of one registry answer."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        """Return the body parsed as JSON."""
        return json.loads(self.body.decode("utf-8"))


class RegistryClient(object):
    """Talk to one registry; handles Basic and Bearer (token service) authentication."""

    def __init__(self, registry_url, username=None, password=None, token=None, ca_path=None,
                 validate_certs=True, timeout=60):
        self.base_url = normalise_registry_url(registry_url)
        self.username = username
        self.password = password
        self.static_token = token
        self.ca_path = ca_path
        self.validate_certs = validate_certs
        self.timeout = timeout
        self._authorization = "Bearer %s" % token if token else None
        self._scoped_tokens = {}

    # -- transport ----------------------------------------------------------------------------
    def _open(self, method, url, headers, data=None, stream_to=None):
        try:
            answer = open_url(
                url, method=method, headers=headers, data=data, timeout=self.timeout,
                validate_certs=self.validate_certs, ca_path=self.ca_path, follow_redirects="all",
            )
            status = answer.getcode()
        except HTTPError as error:
            answer, status = error, error.code
        except URLError as error:
            raise RegistryError("cannot reach %s: %s" % (url, error.reason))
        except Exception as error:  # ssl and socket errors surface with several types
            raise RegistryError("cannot reach %s: %s" % (url, error))
        response_headers = dict((key.lower(), value) for key, value in answer.headers.items())
        if stream_to is not None and status < 300:
            shutil.copyfileobj(answer, stream_to, CHUNK)
            return Response(status, response_headers, b"")
        return Response(status, response_headers, answer.read())

    def _basic(self):
        raw = ("%s:%s" % (self.username, self.password or "")).encode("utf-8")
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def _fetch_token(self, params, scope):
        query = {"service": params.get("service", "")}
        if scope or params.get("scope"):
            query["scope"] = scope or params["scope"]
        headers = {"Authorization": self._basic()} if self.username else {}
        answer = self._open("GET", params["realm"] + "?" + urlencode(query), headers)
        if answer.status != 200:
            raise RegistryError("token service %s answered %d" % (params["realm"], answer.status))
        body = answer.json()
        return body.get("token") or body.get("access_token")

    def _authorize(self, challenge_header, scope):
        scheme, params = parse_challenge(challenge_header)
        if scheme == "basic" and self.username:
            return self._basic()
        if scheme == "bearer" and self.static_token:
            return None  # a static token that was refused: nothing better to try
        if scheme == "bearer" and "realm" in params:
            return "Bearer %s" % self._fetch_token(params, scope)
        return None

    def request(self, method, path, headers=None, data=None, scope=None, expect=(200,),
                stream_to=None):
        """Send one request, authenticating on a 401 challenge; raise unless status in expect."""
        url = path if path.startswith("http") else self.base_url + path
        headers = dict(headers or {})
        authorization = self._scoped_tokens.get(scope, self._authorization)
        if authorization:
            headers["Authorization"] = authorization
        answer = self._open(method, url, headers, data, stream_to)
        if answer.status == 401:
            authorization = self._authorize(answer.headers.get("www-authenticate"), scope)
            if authorization:
                self._scoped_tokens[scope] = authorization
                headers["Authorization"] = authorization
                if hasattr(data, "seek"):
                    data.seek(0)
                answer = self._open(method, url, headers, data, stream_to)
        if answer.status not in expect:
            raise RegistryError(
                "%s %s answered %d: %s"
                % (method, url, answer.status, answer.body[:500].decode("utf-8", "replace"))
            )
        return answer

    # -- queries ------------------------------------------------------------------------------
    def ping(self):
        """Check that the registry speaks API v2 and accepts our credentials."""
        self.request("GET", "/v2/", scope="")

    def repositories(self, page_size=100):
        """Return every repository name in the catalog."""
        names = []
        path = "/v2/_catalog?n=%d" % page_size
        while path:
            answer = self.request("GET", path, scope="registry:catalog:*")
            names.extend(answer.json().get("repositories") or [])
            path = parse_next_link(answer.headers.get("link"))
        return names

    def tags(self, repository):
        """Return the tags of a repository (empty when it does not exist)."""
        scope = "repository:%s:pull" % repository
        answer = self.request("GET", "/v2/%s/tags/list" % repository, scope=scope, expect=(200, 404))
        if answer.status == 404:
            return []
        return sorted(answer.json().get("tags") or [])

    def manifest(self, repository, reference):
        """Return (media type, body, digest) of a manifest, or None when it does not exist."""
        answer = self.request(
            "GET", "/v2/%s/manifests/%s" % (repository, reference),
            headers={"Accept": ACCEPT_MANIFESTS}, scope="repository:%s:pull" % repository,
            expect=(200, 404),
        )
        if answer.status == 404:
            return None
        digest = "sha256:" + hashlib.sha256(answer.body).hexdigest()
        media_type = answer.headers.get("content-type", "").split(";")[0]
        media_type = json.loads(answer.body.decode("utf-8")).get("mediaType") or media_type
        return media_type, answer.body, digest

    def blob_exists(self, repository, digest):
        """Tell whether a blob is already in a repository."""
        answer = self.request(
            "HEAD", "/v2/%s/blobs/%s" % (repository, digest),
            scope="repository:%s:pull" % repository, expect=(200, 404),
        )
        return answer.status == 200

    # -- changes ------------------------------------------------------------------------------
    def put_manifest(self, repository, reference, media_type, body):
        """Upload a manifest under a tag or digest."""
        self.request(
            "PUT", "/v2/%s/manifests/%s" % (repository, reference),
            headers={"Content-Type": media_type}, data=body,
            scope="repository:%s:pull,push" % repository, expect=(201,),
        )

    def mount_blob(self, repository, digest, from_repository):
        """Link a blob from another repository of the same registry; True when it worked."""
        query = urlencode({"mount": digest, "from": from_repository})
        answer = self.request(
            "POST", "/v2/%s/blobs/uploads/?%s" % (repository, query), data=b"",
            scope="repository:%s:pull,push" % repository, expect=(201, 202),
        )
        return answer.status == 201

    def upload_blob(self, repository, digest, source_file, size):
        """Upload a blob in one piece from an open file."""
        scope = "repository:%s:pull,push" % repository
        start = self.request("POST", "/v2/%s/blobs/uploads/" % repository, data=b"",
                             scope=scope, expect=(202,))
        location = start.headers["location"]
        if not location.startswith("http"):
            location = self.base_url + location
        separator = "&" if "?" in location else "?"
        source_file.seek(0)
        self.request(
            "PUT", location + separator + urlencode({"digest": digest}),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            data=source_file, scope=scope, expect=(201,),
        )

    def download_blob(self, repository, digest, target_file):
        """Write a blob into an open file."""
        self.request("GET", "/v2/%s/blobs/%s" % (repository, digest), stream_to=target_file,
                     scope="repository:%s:pull" % repository)

    def delete_manifest(self, repository, digest):
        """Delete a manifest by digest (every tag pointing at it goes too)."""
        self.request(
            "DELETE", "/v2/%s/manifests/%s" % (repository, digest),
            scope="repository:%s:delete" % repository, expect=(202,),
        )


def manifest_blobs(manifest_body):
    """Return the blob digests (config first, then layers) an image manifest refers to."""
    manifest = json.loads(manifest_body.decode("utf-8"))
    blobs = []
    if manifest.get("config"):
        blobs.append((manifest["config"]["digest"], manifest["config"].get("size", 0)))
    for layer in manifest.get("layers") or []:
        blobs.append((layer["digest"], layer.get("size", 0)))
    return blobs


def child_manifests(manifest_body):
    """Return the digests of the manifests a manifest list or index refers to."""
    return [entry["digest"] for entry in json.loads(manifest_body.decode("utf-8"))["manifests"]]


class ImageCopier(object):
    """Copy one image (or multi-platform index) from a source registry to a destination."""

    def __init__(self, source, destination):
        self.source = source
        self.destination = destination
        self.same_registry = source.base_url == destination.base_url
        self.blobs_copied = 0

    def copy(self, source_repository, source_reference, repository, tag):
        """Copy and return the digest of the top manifest."""
        found = self.source.manifest(source_repository, source_reference)
        if found is None:
            raise RegistryError("%s/%s:%s does not exist" % (
                self.source.base_url, source_repository, source_reference))
        media_type, body, digest = found
        self._copy_manifest_content(source_repository, repository, media_type, body)
        self.destination.put_manifest(repository, tag, media_type, body)
        return digest

    def _copy_manifest_content(self, source_repository, repository, media_type, body):
        if media_type in MANIFEST_LIST_TYPES:
            for child_digest in child_manifests(body):
                child_type, child_body, dummy = self.source.manifest(source_repository, child_digest)
                self._copy_manifest_content(source_repository, repository, child_type, child_body)
                self.destination.put_manifest(repository, child_digest, child_type, child_body)
            return
        for blob_digest, size in manifest_blobs(body):
            self._copy_blob(source_repository, repository, blob_digest, size)

    def _copy_blob(self, source_repository, repository, digest, size):
        if self.destination.blob_exists(repository, digest):
            return
        if self.same_registry and self.destination.mount_blob(repository, digest, source_repository):
            self.blobs_copied += 1
            return
        with tempfile.TemporaryFile() as blob_file:
            self.source.download_blob(source_repository, digest, blob_file)
            size = blob_file.tell()
            self.destination.upload_blob(repository, digest, blob_file, size)
        self.blobs_copied += 1
