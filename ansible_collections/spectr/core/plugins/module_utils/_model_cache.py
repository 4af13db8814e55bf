# Copyright (c) Spectr authors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
#
# This module_utils is PRIVATE to spectr.core: its API may change without notice.
"""A host's model cache (layout shared with the Spectr agent) and a registry blob reader.

Runs on the managed host with the Python standard library only. Layout under the root:
  blobs/sha256/<hex>            complete, verified blobs (0644); <hex>.partial while fetching
  sha256-<mhex>/<path>          the model folder: each file a hard link to its blob
  manifests/sha256-<mhex>.json  written last, atomically: marks the model complete
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import re
import shutil
import ssl
import tempfile

from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import HTTPRedirectHandler, HTTPSHandler, Request, build_opener

DEFAULT_ROOT = "/var/lib/spectr/models"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT_MANIFESTS = OCI_MANIFEST + ", application/vnd.docker.distribution.manifest.v2+json"
TITLE_ANNOTATION = "org.opencontainers.image.title"
DIGEST_RE = re.compile(r"^sha256:([0-9a-f]{64})$")
CHUNK = 1024 * 1024


class ModelCacheError(Exception):
    """The model cannot be brought to the wanted state; the message says why."""


def digest_hex(digest):
    """Return the hex of a sha256 digest, refusing any other form."""
    match = DIGEST_RE.match(digest or "")
    if not match:
        raise ModelCacheError("not a sha256 digest: %r" % (digest,))
    return match.group(1)


def check_relative_path(path):
    """Refuse absolute paths, `..`, `.` and empty parts (the contract's rule for model files)."""
    parts = (path or "").split("/")
    if not path or path.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ModelCacheError("refusing model file path %r" % (path,))
    if "\x00" in path:
        raise ModelCacheError("refusing model file path %r" % (path,))
    return path


def normalise_files(files):
    """Check a list of {path, digest, size}; return copies sorted by path."""
    seen = set()
    checked = []
    for entry in files:
        path = check_relative_path(entry.get("path"))
        digest_hex(entry.get("digest"))
        size = entry.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ModelCacheError("file %s: size must be a non-negative integer" % path)
        if path in seen:
            raise ModelCacheError("file %s is listed twice" % path)
        seen.add(path)
        checked.append({"path": path, "digest": entry["digest"], "size": size})
    names = set(seen)
    for path in names:  # a file cannot also be a folder of another file
        if any(other.startswith(path + "/") for other in names):
            raise ModelCacheError("file %s is also a folder of another file" % path)
    return sorted(checked, key=lambda entry: entry["path"])


def files_from_manifest(body):
    """Return the model files an OCI manifest lists (one layer per file, titled by path)."""
    try:
        manifest = json.loads(body.decode("utf-8"))
    except ValueError as error:
        raise ModelCacheError("the model manifest is not JSON: %s" % error)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("layers"), list):
        raise ModelCacheError("the model manifest has no layers list")
    files = []
    for layer in manifest["layers"]:
        title = (layer.get("annotations") or {}).get(TITLE_ANNOTATION)
        if not title:
            raise ModelCacheError("layer %s has no %s annotation" % (layer.get("digest"), TITLE_ANNOTATION))
        files.append({"path": title, "digest": layer.get("digest"), "size": layer.get("size")})
    return normalise_files(files)


def sha256_file(path):
    """Return the sha256 digest of a file."""
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


class _SameHostRedirects(HTTPRedirectHandler):
    """Follow redirects, but send credentials only to the registry itself (not to storage)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = HTTPRedirectHandler.redirect_request(self, req, fp, code, msg, headers, newurl)
        if new is not None and urlsplit(newurl).netloc != urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


class RegistryReader(object):
    """Read manifests and blobs of one repository (Docker registry API v2, Basic auth)."""

    def __init__(self, url, repository, username=None, password=None, ca_pem=None,
                 ca_path=None, validate_certs=True, timeout=60):
        if not url.startswith(("https://", "http://")):
            raise ModelCacheError("registry_url must start with https:// or http://: %r" % url)
        self.base_url = url.rstrip("/")
        self.repository = repository
        self.timeout = timeout
        self.headers = {}
        if username:
            raw = ("%s:%s" % (username, password or "")).encode("utf-8")
            self.headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        context = ssl.create_default_context(cafile=ca_path, cadata=ca_pem)
        if not validate_certs:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self.opener = build_opener(HTTPSHandler(context=context), _SameHostRedirects())

    def _open(self, path, headers):
        url = self.base_url + path
        request = Request(url, headers=dict(self.headers, **headers))
        try:
            return self.opener.open(request, timeout=self.timeout)
        except HTTPError as error:
            if error.code == 416:
                return error
            detail = error.read()[:300].decode("utf-8", "replace")
            raise ModelCacheError("GET %s answered %d: %s" % (url, error.code, detail))
        except (URLError, OSError, ssl.SSLError) as error:
            raise ModelCacheError("cannot reach %s: %s" % (url, getattr(error, "reason", error)))

    def manifest(self, reference):
        """Return (body, digest) of the manifest a tag or digest names."""
        answer = self._open("/v2/%s/manifests/%s" % (self.repository, reference),
                            {"Accept": ACCEPT_MANIFESTS})
        body = answer.read()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and reference != digest:
            raise ModelCacheError("the registry sent manifest %s for %s" % (digest, reference))
        return body, digest

    def fetch_blob(self, digest, target, offset):
        """Append a blob to `target` from `offset` (Range); return the bytes written."""
        headers = {"Range": "bytes=%d-" % offset} if offset else {}
        answer = self._open("/v2/%s/blobs/%s" % (self.repository, digest), headers)
        status = answer.getcode() if hasattr(answer, "getcode") else answer.code
        if status == 416:  # the partial file is longer than the blob: start again
            answer.close()
            return self.fetch_blob(digest, target, 0) if offset else 0
        mode = "ab" if offset and status == 206 else "wb"
        written = 0
        with open(target, mode) as handle:
            for chunk in iter(lambda: answer.read(CHUNK), b""):
                handle.write(chunk)
                written += len(chunk)
        answer.close()
        return written


class ModelCache(object):
    """Paths of the shared host layout and the few operations on them."""

    def __init__(self, root):
        self.root = root
        self.blob_dir = os.path.join(root, "blobs", "sha256")
        self.manifest_dir = os.path.join(root, "manifests")

    def blob(self, digest):
        return os.path.join(self.blob_dir, digest_hex(digest))

    def partial(self, digest):
        return self.blob(digest) + ".partial"

    def model_dir(self, digest):
        return os.path.join(self.root, "sha256-" + digest_hex(digest))

    def manifest_path(self, digest):
        return os.path.join(self.manifest_dir, "sha256-%s.json" % digest_hex(digest))

    def read_manifest(self, digest):
        """Return the recorded manifest json of a model, or None."""
        try:
            with open(self.manifest_path(digest)) as handle:
                return json.load(handle)
        except (IOError, OSError, ValueError):
            return None

    def digests_in_use(self, except_digest=None):
        """Return every blob digest a recorded model other than `except_digest` uses."""
        used = set()
        if not os.path.isdir(self.manifest_dir):
            return used
        skip = "sha256-%s.json" % digest_hex(except_digest) if except_digest else None
        for name in os.listdir(self.manifest_dir):
            if not name.endswith(".json") or name == skip:
                continue
            try:
                with open(os.path.join(self.manifest_dir, name)) as handle:
                    recorded = json.load(handle)
                used.update(entry["digest"] for entry in recorded.get("files") or [])
            except (IOError, OSError, ValueError, KeyError, TypeError):
                continue  # a broken manifest must not stop a removal
        return used

    def folder_files(self, digest):
        """Return the relative paths of every file in a model's folder."""
        top = self.model_dir(digest)
        found = []
        for folder, dummy, names in os.walk(top):
            for name in names:
                found.append(os.path.relpath(os.path.join(folder, name), top).replace(os.sep, "/"))
        return sorted(found)

    def free_bytes(self):
        """Return the bytes free at the root (or its nearest existing parent)."""
        path = self.root
        while not os.path.exists(path):
            path = os.path.dirname(path) or "/"
        stats = os.statvfs(path)
        return stats.f_bavail * stats.f_frsize

    def make_dirs(self):
        for path in (self.blob_dir, self.manifest_dir):
            if not os.path.isdir(path):
                os.makedirs(path, 0o755)

    def link(self, digest, path, model_digest):
        """Hard-link a blob to `path` in a model's folder, replacing what is there."""
        target = os.path.join(self.model_dir(model_digest), *path.split("/"))
        parent = os.path.dirname(target)
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o755)
        if os.path.lexists(target):
            os.unlink(target)
        os.link(self.blob(digest), target)

    def is_linked(self, digest, path, model_digest):
        """Tell whether the folder file is the blob itself (same inode)."""
        target = os.path.join(self.model_dir(model_digest), *path.split("/"))
        try:
            return os.path.samefile(target, self.blob(digest)) and not os.path.islink(target)
        except OSError:
            return False

    def write_manifest(self, digest, name, files):
        """Write the model's manifest json atomically (tmp + rename): the model is complete."""
        record = {
            "digest": digest, "name": name, "files": files,
            "pulled_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        }
        handle, tmp = tempfile.mkstemp(dir=self.manifest_dir, prefix=".tmp-")
        try:
            with os.fdopen(handle, "w") as out:
                json.dump(record, out, indent=2, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            os.rename(tmp, self.manifest_path(digest))
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def remove_blob(self, digest):
        """Delete a blob and its partial download; True when something was there."""
        removed = False
        for path in (self.blob(digest), self.partial(digest)):
            if os.path.lexists(path):
                os.unlink(path)
                removed = True
        return removed

    def remove_model(self, digest):
        """Delete a model's manifest json (first: no longer complete), then its folder."""
        removed = False
        if os.path.lexists(self.manifest_path(digest)):
            os.unlink(self.manifest_path(digest))
            removed = True
        if os.path.isdir(self.model_dir(digest)):
            shutil.rmtree(self.model_dir(digest))
            removed = True
        return removed
