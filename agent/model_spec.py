"""What a model pull asks for, checked strictly, and the model cache's errors (stdlib only)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
# distribution's repository grammar: lowercase path components joined by separators
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")  # fmt: skip
_MAX_PATH = 4096
_SPEC_KEYS = {"digest", "name", "files", "source", "verify"}
_FILE_KEYS = {"path", "digest", "size"}
_SOURCE_KEYS = {"url", "repository", "username", "password", "ca_pem"}


class ModelCacheError(Exception):
    """Base of every error the model cache raises."""


class SpecError(ModelCacheError, ValueError):
    """The pull spec (or a digest) breaks a rule; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class NotEnoughSpace(ModelCacheError):
    """The root's filesystem cannot hold the bytes a pull still needs."""

    def __init__(self, needed: int, free: int, root: str, reserve: int) -> None:
        super().__init__(
            f"needs {needed} bytes, {free} free on {root} (keeping {reserve} bytes in reserve)"
        )
        self.needed, self.free, self.root, self.reserve = needed, free, root, reserve


class NotFound(ModelCacheError, LookupError):
    """No complete model with that digest is in the cache."""


class FetchError(ModelCacheError):
    """A file could not be fetched or did not match its digest."""


@dataclass(frozen=True)
class Source:
    """Where blobs come from: a registry v2 repository, its credentials and CA."""

    url: str
    repository: str
    username: str | None = None
    password: str | None = None
    ca_pem: str | None = None


@dataclass(frozen=True)
class ModelFile:
    """One file of a model: relative POSIX path, blob digest, size in bytes."""

    path: str
    digest: str
    size: int

    @property
    def hex(self) -> str:
        """Return the digest's hex part."""
        return self.digest.split(":", 1)[1]


@dataclass(frozen=True)
class ModelSpec:
    """A validated pull request."""

    digest: str
    name: str
    files: tuple[ModelFile, ...]
    source: Source
    verify: bool = True

    @property
    def hex(self) -> str:
        """Return the manifest digest's hex part."""
        return self.digest.split(":", 1)[1]


def check_digest(value: Any, field: str = "digest") -> str:
    """Return value if it is sha256:<64 lowercase hex>, else raise SpecError."""
    if not isinstance(value, str) or not DIGEST.match(value):
        raise SpecError(field, "must be sha256:<64 lowercase hex digits>")
    return value


def check_path(value: Any, field: str) -> str:
    """Return a relative POSIX path with no empty, '.' or '..' parts, else raise SpecError."""
    if not isinstance(value, str) or not value or len(value) > _MAX_PATH or "\x00" in value:
        raise SpecError(field, "must be a non-empty relative path")
    if value.startswith("/"):
        raise SpecError(field, f"must be relative, got absolute {value!r}")
    if any(part in ("", ".", "..") for part in value.split("/")):
        raise SpecError(field, f"must not hold '..', '.' or empty parts, got {value!r}")
    return value


def _strict_keys(document: Any, allowed: set[str], field: str) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise SpecError(field, "must be an object")
    unknown = sorted(set(document) - allowed)
    if unknown:
        raise SpecError(f"{field}.{unknown[0]}" if field else unknown[0], "unknown field")
    return document


def _file(entry: Any, index: int) -> ModelFile:
    field = f"files[{index}]"
    entry = _strict_keys(entry, _FILE_KEYS, field)
    size = entry.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise SpecError(f"{field}.size", "must be an integer >= 0")
    path = check_path(entry.get("path"), f"{field}.path")
    return ModelFile(path, check_digest(entry.get("digest"), f"{field}.digest"), size)


def _files(value: Any) -> tuple[ModelFile, ...]:
    if not isinstance(value, list) or not value:
        raise SpecError("files", "must be a non-empty list")
    files = tuple(_file(entry, index) for index, entry in enumerate(value))
    paths = {item.path for item in files}
    for index, item in enumerate(files):
        if any(other.path == item.path for other in files[:index]):
            raise SpecError(f"files[{index}].path", f"{item.path!r} is listed twice")
        parts = item.path.split("/")
        for depth in range(1, len(parts)):  # "a" and "a/b" cannot both be files
            if "/".join(parts[:depth]) in paths:
                raise SpecError(f"files[{index}].path", f"{item.path!r} lies under a file")
    for index, item in enumerate(files):
        same = [other.size for other in files if other.digest == item.digest]
        if len(set(same)) > 1:
            raise SpecError(f"files[{index}].size", "differs from another file of that digest")
    return files


def _source(value: Any) -> Source:
    value = _strict_keys(value, _SOURCE_KEYS, "source")
    url = value.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
        raise SpecError("source.url", "must be an https:// or http:// registry URL")
    repository = value.get("repository")
    if not isinstance(repository, str) or not _REPOSITORY.match(repository):
        raise SpecError("source.repository", "must be a registry repository such as models/tiny")
    optional = {}
    for key in ("username", "password", "ca_pem"):
        item = value.get(key)
        if item is not None and not isinstance(item, str):
            raise SpecError(f"source.{key}", "must be a string")
        optional[key] = item or None
    return Source(url.rstrip("/"), repository, **optional)


def parse_spec(document: Any) -> ModelSpec:
    """Return the validated spec of a pull, or raise SpecError naming the field."""
    if isinstance(document, ModelSpec):
        return document
    document = _strict_keys(document, _SPEC_KEYS, "")
    digest = check_digest(document.get("digest"))
    name = document.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise SpecError("name", "must be a non-empty string of at most 255 characters")
    verify = document.get("verify", True)
    if not isinstance(verify, bool):
        raise SpecError("verify", "must be a boolean")
    files = _files(document.get("files"))
    return ModelSpec(digest, name, files, _source(document.get("source")), verify)
