"""Model files in places other than an upload: an internal Hugging Face-compatible mirror
(`HF_ENDPOINT`-style, a repository at a revision), an S3-compatible bucket (a prefix), or another
OCI registry (a model artifact). Each lists its files and streams one file at a time; the
import stages them like an upload, so every path ends in the same hashing and storing.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from portal.artifacts.oci import CHUNK, files_of_manifest
from portal.artifacts.staging import StagingError

MAX_REMOTE_FILES = 10_000


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int | None = None
    sha256: str | None = None  # "sha256:<hex>" when the source vouches for the content


class RemoteModel(Protocol):
    def files(self) -> list[RemoteFile]: ...

    def chunks(self, item: RemoteFile) -> Iterator[bytes]: ...

    def describe(self) -> str: ...


def _tls(ca_pem: str | None) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cadata=ca_pem) if ca_pem else True


class HuggingFaceMirror:
    """A repository of an internal Hub mirror: `GET /api/models/{repo}/revision/{rev}` lists the
    files (with sizes and LFS sha256), `GET /{repo}/resolve/{rev}/{path}` serves each."""

    def __init__(self, url: str, repository: str, revision: str, token: str | None,
                 ca_pem: str | None) -> None:  # fmt: skip
        self.repository, self.revision = repository, revision
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, verify=_tls(ca_pem),
                                  timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True,
                                  trust_env=False)  # fmt: skip

    def describe(self) -> str:
        return f"{self.repository} at {self.revision} on the Hub mirror {self._http.base_url}"

    def files(self) -> list[RemoteFile]:
        path = f"/api/models/{self.repository}/revision/{quote(self.revision, safe='')}"
        answer = self._get(path, params={"blobs": "true"})
        siblings = answer.json().get("siblings") or []
        if len(siblings) > MAX_REMOTE_FILES:
            raise StagingError(f"{self.repository} lists more than {MAX_REMOTE_FILES} files.")
        return [_hf_file(item) for item in siblings if isinstance(item, dict)]

    def chunks(self, item: RemoteFile) -> Iterator[bytes]:
        path = f"/{self.repository}/resolve/{quote(self.revision, safe='')}/{quote(item.path)}"
        with self._http.stream("GET", path) as response:
            _check(response, f"{self.repository}/{item.path}")
            yield from response.iter_bytes(CHUNK)

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.get(path, **kwargs)
        except httpx.HTTPError as exc:
            raise StagingError(f"Cannot reach the mirror {self._http.base_url}: {exc}") from None
        _check(response, self.repository)
        return response


def _hf_file(item: dict[str, Any]) -> RemoteFile:
    lfs = item.get("lfs") or {}
    sha = lfs.get("sha256") or lfs.get("oid")
    return RemoteFile(str(item.get("rfilename")), item.get("size") or lfs.get("size"),
                      f"sha256:{sha}" if sha else None)  # fmt: skip


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code in (401, 403):
        raise StagingError(
            f"The mirror refused the credentials for {what} ({response.status_code})."
        )
    if response.status_code == 404:
        raise StagingError(f"The mirror has no {what} (404).")
    if response.status_code >= 400:
        response.read()
        raise StagingError(
            f"The mirror answered {response.status_code} for {what}: {response.text[:200]}"
        )


class S3Prefix:
    """Every object under a prefix of a bucket on an S3-compatible service (MinIO, Ceph, AWS)."""

    def __init__(self, url: str, bucket: str, prefix: str, access_key: str | None,
                 secret_key: str | None, region: str | None, ca_pem: str | None) -> None:  # fmt: skip
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self._ca_file = _ca_file(ca_pem)
        self._s3 = boto3.client(
            "s3", endpoint_url=url, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            region_name=region or "us-east-1", verify=self._ca_file or True,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3},
                          connect_timeout=10, read_timeout=60),
        )  # fmt: skip

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def files(self) -> list[RemoteFile]:
        from botocore.exceptions import BotoCoreError, ClientError

        start = f"{self.prefix}/" if self.prefix else ""
        found: list[RemoteFile] = []
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start
            ):
                for item in page.get("Contents") or []:
                    if not item["Key"].endswith("/"):
                        found.append(RemoteFile(item["Key"][len(start) :], int(item["Size"])))
                if len(found) > MAX_REMOTE_FILES:
                    raise StagingError(
                        f"s3://{self.bucket}/{start} holds over {MAX_REMOTE_FILES} files."
                    )
        except (BotoCoreError, ClientError) as exc:
            raise StagingError(f"Cannot list s3://{self.bucket}/{start}: {exc}") from None
        if not found:
            raise StagingError(f"s3://{self.bucket}/{start} holds no files.")
        return found

    def chunks(self, item: RemoteFile) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError, ClientError

        key = f"{self.prefix}/{item.path}" if self.prefix else item.path
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]
            yield from body.iter_chunks(CHUNK)
        except (BotoCoreError, ClientError) as exc:
            raise StagingError(f"Cannot read s3://{self.bucket}/{key}: {exc}") from None

    def close(self) -> None:
        if self._ca_file:
            os.unlink(self._ca_file)


def _ca_file(ca_pem: str | None) -> str | None:
    """botocore takes a CA bundle as a file path, not as text."""
    if not ca_pem:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as handle:
        handle.write(ca_pem)
    return handle.name


class RegistryArtifact:
    """A model stored as an OCI artifact in another registry: one layer per titled file."""

    def __init__(self, client: Any, repository: str, reference: str) -> None:
        self.client, self.repository, self.reference = client, repository, reference

    def describe(self) -> str:
        return f"{self.client.url}/{self.repository}:{self.reference}"

    def files(self) -> list[RemoteFile]:
        import json

        _, body, _ = self.client.manifest(self.repository, self.reference)
        layers = files_of_manifest(json.loads(body))
        if not layers:
            raise StagingError(
                f"{self.repository}:{self.reference} has no file layers (a layer per file with an "
                "org.opencontainers.image.title annotation): it is not a model artifact."
            )
        return [RemoteFile(f["path"], f["size"], f["digest"]) for f in layers]

    def chunks(self, item: RemoteFile) -> Iterator[bytes]:
        yield from self.client.stream_blob(self.repository, item.sha256)

    def close(self) -> None:
        self.client.close()
