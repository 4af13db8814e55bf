# Copyright (c) Spectr authors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""A small in-memory Docker Registry HTTP API v2 on 127.0.0.1 for the registry clients' tests.

It speaks the parts of the API the module utils use (catalog with pagination, tags, manifests,
blobs with Range, uploads, cross-repository mounts, deletes) and the two ways distribution
authenticates (Basic, and Bearer from a token service), and records every request it answers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

ROUTE = re.compile(r"^/v2/(?P<repo>.+)/(?P<kind>manifests|blobs|tags)/(?P<ref>[^/]+)$")
UPLOAD = re.compile(r"^/v2/(?P<repo>.+)/blobs/uploads/$")


def digest_of(data):
    """Return the sha256 digest of some bytes, as registries write it."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeRegistry(object):
    """State of one registry: repositories, blobs, users, and the requests it saw."""

    def __init__(self):
        self.manifests = {}  # (repository, tag or digest) -> (media type, body)
        self.blobs = {}  # (repository, digest) -> bytes
        self.users = {}  # name -> password; empty: anonymous access
        self.token_realm = False  # True: Bearer auth through the token service at /token
        self.redirect_blobs_to = None  # base URL that blob GETs are redirected to
        self.requests = []  # (method, path, headers) of every request
        self.uploads = {}
        self.server = None

    @property
    def url(self):
        host, port = self.server.server_address[:2]
        return "http://%s:%d" % (host, port)

    def add_blob(self, repository, data):
        """Store a blob and return its digest."""
        digest = digest_of(data)
        self.blobs[(repository, digest)] = data
        return digest

    def add_manifest(self, repository, reference, media_type, body):
        """Store a manifest under a tag (and its digest); return the digest."""
        digest = digest_of(body)
        self.manifests[(repository, reference)] = (media_type, body)
        self.manifests[(repository, digest)] = (media_type, body)
        return digest

    def repositories(self):
        return sorted(set(key[0] for key in self.manifests) | set(key[0] for key in self.blobs))


class Handler(BaseHTTPRequestHandler):
    """Answer one request against the server's FakeRegistry."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # or each answer waits ~40 ms on a delayed ACK

    def log_message(self, *args):  # keep pytest's output clean
        pass

    @property
    def registry(self):
        return self.server.registry

    def _send(self, status, body=b"", headers=None):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status, document, headers=None):
        self._send(status, json.dumps(document).encode(), dict(headers or {}, **{
            "Content-Type": "application/json"}))

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _authorized(self):
        registry = self.registry
        if not registry.users:
            return True
        given = self.headers.get("Authorization") or ""
        if registry.token_realm:
            if given == "Bearer issued-token":
                return True
            self._send(401, b"{}", {"WWW-Authenticate": 'Bearer realm="%s/token",service="fake"'
                                    % registry.url})
            return False
        for name, password in registry.users.items():
            raw = base64.b64encode(("%s:%s" % (name, password)).encode()).decode()
            if given == "Basic " + raw:
                return True
        self._send(401, b"{}", {"WWW-Authenticate": 'Basic realm="fake"'})
        return False

    def _handle(self):
        registry = self.registry
        parts = urlsplit(self.path)
        query = dict((key, values[0]) for key, values in parse_qs(parts.query).items())
        registry.requests.append((self.command, self.path, dict(self.headers.items())))
        body = self._body()
        if parts.path == "/token":
            return self._token(query)
        if parts.path.startswith("/redirected/"):
            return self._send(200, self._redirected(parts.path))
        if not self._authorized():
            return None
        if parts.path == "/v2/":
            return self._send_json(200, {})
        if parts.path == "/v2/_catalog":
            return self._catalog(query)
        if parts.path.startswith("/v2/uploads/"):
            return self._finish_upload(parts.path, query, body)
        upload = UPLOAD.match(parts.path)
        if upload and self.command == "POST":
            return self._start_upload(upload.group("repo"), query)
        match = ROUTE.match(parts.path)
        if not match:
            return self._send(404)
        repo, kind, ref = match.group("repo"), match.group("kind"), match.group("ref")
        if kind == "tags":
            return self._tags(repo)
        if kind == "manifests":
            return self._manifest(repo, ref, body)
        return self._blob(repo, ref)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _handle

    def _token(self, query):
        header = self.headers.get("Authorization") or ""
        name, password = next(iter(self.registry.users.items()))
        expected = "Basic " + base64.b64encode(("%s:%s" % (name, password)).encode()).decode()
        if header != expected:
            return self._send_json(401, {"errors": [{"code": "UNAUTHORIZED"}]})
        return self._send_json(200, {"token": "issued-token", "scope": query.get("scope", "")})

    def _redirected(self, path):
        """Serve a blob by digest alone, as the storage behind a registry's redirect does."""
        digest = path.partition("/redirected/")[2]
        return next(data for (dummy, found), data in self.registry.blobs.items() if found == digest)

    def _catalog(self, query):
        names = self.registry.repositories()
        size = int(query.get("n", 100))
        if query.get("last"):
            names = [name for name in names if name > query["last"]]
        page, rest = names[:size], names[size:]
        headers = {}
        if rest:
            headers["Link"] = '</v2/_catalog?last=%s&n=%d>; rel="next"' % (page[-1], size)
        return self._send_json(200, {"repositories": page}, headers)

    def _tags(self, repo):
        tags = sorted(ref for name, ref in self.registry.manifests
                      if name == repo and not ref.startswith("sha256:"))
        if not tags:
            return self._send_json(404, {"errors": [{"code": "NAME_UNKNOWN"}]})
        return self._send_json(200, {"name": repo, "tags": tags})

    def _manifest(self, repo, ref, body):
        registry = self.registry
        if self.command == "PUT":
            registry.add_manifest(repo, ref, self.headers.get("Content-Type"), body)
            return self._send(201, headers={"Docker-Content-Digest": digest_of(body)})
        found = registry.manifests.get((repo, ref))
        if found is None:
            return self._send_json(404, {"errors": [{"code": "MANIFEST_UNKNOWN"}]})
        if self.command == "DELETE":
            digest = digest_of(found[1])
            for key in [key for key, value in registry.manifests.items()
                        if key[0] == repo and digest_of(value[1]) == digest]:
                del registry.manifests[key]
            return self._send(202)
        media_type, data = found
        return self._send(200, data, {"Content-Type": media_type,
                                      "Docker-Content-Digest": digest_of(data)})

    def _blob(self, repo, digest):
        registry = self.registry
        data = registry.blobs.get((repo, digest))
        if data is None:
            return self._send_json(404, {"errors": [{"code": "BLOB_UNKNOWN"}]})
        if self.command == "GET" and registry.redirect_blobs_to:
            return self._send(307, headers={
                "Location": "%s/redirected/%s" % (registry.redirect_blobs_to, digest)})
        wanted = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
        if wanted:
            start = int(wanted.group(1))
            if start >= len(data):
                return self._send(416, headers={"Content-Range": "bytes */%d" % len(data)})
            return self._send(206, data[start:], {
                "Content-Range": "bytes %d-%d/%d" % (start, len(data) - 1, len(data))})
        return self._send(200, data, {"Docker-Content-Digest": digest})

    def _start_upload(self, repo, query):
        registry = self.registry
        if "mount" in query and (query.get("from"), query["mount"]) in registry.blobs:
            registry.blobs[(repo, query["mount"])] = registry.blobs[(query["from"], query["mount"])]
            return self._send(201, headers={"Location": "/v2/%s/blobs/%s" % (repo, query["mount"])})
        upload_id = str(len(registry.uploads) + 1)
        registry.uploads[upload_id] = repo
        return self._send(202, headers={"Location": "/v2/uploads/%s?_state=x" % upload_id})

    def _finish_upload(self, path, query, body):
        repo = self.registry.uploads.pop(path.rsplit("/", 1)[1])
        if digest_of(body) != query.get("digest"):
            return self._send_json(400, {"errors": [{"code": "DIGEST_INVALID"}]})
        self.registry.blobs[(repo, query["digest"])] = body
        return self._send(201)


@pytest.fixture
def make_registry():
    """Return a callable that starts a FakeRegistry on 127.0.0.1; all stop after the test."""
    servers = []

    def start():
        registry = FakeRegistry()
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.registry = registry
        registry.server = server
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        servers.append(server)
        return registry

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def registry(make_registry):
    """One running FakeRegistry."""
    return make_registry()
