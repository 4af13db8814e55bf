"""Clients that push and pull against a registry in threads while something else happens.

Each attempt is recorded with when it started and ended and how it ended, so a test can say
what clients saw before, during and after a garbage collection's read-only window.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import docker

from portal.core.errors import SpectrError
from portal.registry.client import MANIFEST_V2, RegistryClient
from portal.registry.errors import RegistryReadOnly, RegistryUnreachable
from portal.registry.manifests import image_blobs, parse_manifest
from tests.registry.seed import digest_of, image_parts


@dataclass
class Attempt:
    started: float
    ended: float
    outcome: str  # pushed | pulled | read-only | restarting | blob-unknown | failed
    tag: str = ""
    detail: str = ""


@dataclass
class Race:
    """Threads that run one client loop each until `stop()`; their attempts by name."""

    attempts: dict[str, list[Attempt]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self, name: str, attempt: Callable[[int], Attempt]) -> None:
        self.attempts[name] = []

        def loop() -> None:
            number = 0
            while not self._stop.is_set():
                number += 1
                self.attempts[name].append(attempt(number))
                if self.attempts[name][-1].outcome not in ("pushed", "pulled"):
                    self._stop.wait(0.02)  # no busy loop while the registry restarts

        thread = threading.Thread(target=loop, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def _classified(started: float, tag: str, call: Callable[[], str]) -> Attempt:
    try:
        outcome, detail = call(), ""
    except RegistryReadOnly as exc:
        outcome, detail = "read-only", exc.message
    except RegistryUnreachable as exc:
        outcome, detail = "restarting", exc.message
    except SpectrError as exc:
        # A manifest whose blobs the sweep removed is refused by the registry itself.
        outcome = "blob-unknown" if "BLOB_UNKNOWN" in exc.message else "failed"
        detail = exc.message
    return Attempt(started, time.monotonic(), outcome, tag, detail)


def http_pusher(client: RegistryClient, repository: str) -> Callable[[int], Attempt]:
    """Push a new one-layer image per attempt (new blobs each time) under race-<n>."""

    def attempt(number: int) -> Attempt:
        tag = f"race-{number}"
        config, layer, manifest = image_parts(f"pushed during gc, {number}".encode())

        def push() -> str:
            for blob in (config, layer):
                client.upload_blob(repository, digest_of(blob), iter([blob]))
            client.put_manifest(repository, tag, MANIFEST_V2, manifest)
            return "pushed"

        return _classified(time.monotonic(), tag, push)

    return attempt


def http_puller(client: RegistryClient, repository: str, tag: str) -> Callable[[int], Attempt]:
    """One pull request per attempt, in turn the manifest and each blob, each digest checked."""
    _, body, manifest_digest = client.manifest(repository, tag)
    blobs = [digest for digest, _size in image_blobs(parse_manifest(body))]

    def attempt(number: int) -> Attempt:
        def pull() -> str:
            if number % (len(blobs) + 1) == 0:
                return (
                    "pulled"
                    if client.manifest(repository, tag)[2] == manifest_digest
                    else "corrupt"
                )
            digest = blobs[number % (len(blobs) + 1) - 1]
            hasher = hashlib.sha256()
            for chunk in client.stream_blob(repository, digest):
                hasher.update(chunk)
            return "pulled" if "sha256:" + hasher.hexdigest() == digest else "corrupt"

        return _classified(time.monotonic(), tag, pull)

    return attempt


def docker_pusher(
    engine: docker.DockerClient, image: str, target: str, auth: dict[str, str]
) -> Callable[[int], Attempt]:
    """`docker push` of one local image under docker-<n>: what the Docker client says."""

    def attempt(number: int) -> Attempt:
        started, tag = time.monotonic(), f"docker-{number}"
        engine.images.get(image).tag(target, tag)
        error = ""
        for line in engine.api.push(target, tag=tag, auth_config=auth, stream=True, decode=True):
            error = line.get("error", error)
        engine.api.remove_image(f"{target}:{tag}")
        outcome = "failed" if error else "pushed"
        return Attempt(started, time.monotonic(), outcome, tag, error)

    return attempt
