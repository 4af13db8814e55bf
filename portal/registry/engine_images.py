"""Images on the Spectr node's own Docker engine: load an archive, push into Spectr's registry.

The ContainerEngine contract has no load or push, so this uses the docker SDK directly, only
for the node's own engine. The archive is handed to Docker as an open file: it streams.
"""

from __future__ import annotations

import contextlib
import json
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests

from portal.core.operations.kinds import PermanentError, TransientError

Progress = Callable[[float, str], None]  # fraction of this step, message
CERTS_DIR = Path("/etc/docker/certs.d")


def archive_tags(path: Path) -> list[str]:
    """Return the RepoTags an image archive (`docker save` output) holds."""
    try:
        with tarfile.open(path, "r:") as archive:
            member = archive.extractfile("manifest.json")
            entries = json.load(member) if member else None
    except (tarfile.TarError, KeyError, ValueError, OSError) as exc:
        raise PermanentError(
            f"The upload is not an image archive from `docker save` ({exc})."
        ) from exc
    if not isinstance(entries, list) or not entries:
        raise PermanentError("The archive's manifest.json lists no images.")
    return [tag for entry in entries for tag in entry.get("RepoTags") or []]


def repository_path(reference: str) -> tuple[str, str]:
    """Split `[registry/]name[:tag]` into (name without a registry, tag)."""
    name, tag = reference, "latest"
    if ":" in reference.rsplit("/", 1)[-1]:
        name, tag = reference.rsplit(":", 1)
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        name = rest
    return name, tag


class NodeEngine:
    """The Spectr node's Docker engine, for load, tag, push and remove."""

    def __init__(self) -> None:
        try:
            self.client = docker.from_env(timeout=600)
            self.client.ping()
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise TransientError(f"The Spectr node's Docker engine does not answer: {exc}") from exc

    def close(self) -> None:
        self.client.close()

    def load(self, path: Path, progress: Progress) -> list[str]:
        """Load an archive from disk, streaming it; return the references Docker reports."""
        loaded: list[str] = []
        with path.open("rb") as archive:
            events = self.client.api.load_image(archive, quiet=False)
            for event in _checked(events, "load"):
                text = str(event.get("stream") or "")
                if text.startswith("Loaded image"):
                    loaded.append(text.split(":", 1)[1].strip())
                detail = event.get("progressDetail") or {}
                if detail.get("total"):
                    progress(detail["current"] / detail["total"], event.get("status", "loading"))
        return loaded

    def exists(self, reference: str) -> bool:
        try:
            self.client.images.get(reference)
            return True
        except docker.errors.ImageNotFound:
            return False

    def push(
        self, source: str, target: str, auth: dict[str, str], progress: Progress
    ) -> str | None:
        """Tag `source` as `target`, push it with progress; return the pushed digest."""
        repository, tag = target.rsplit(":", 1)
        try:
            self.client.images.get(source).tag(repository, tag)
        except docker.errors.ImageNotFound as exc:
            raise PermanentError(f"The node's engine has no image '{source}'.") from exc
        layers: dict[str, tuple[int, int]] = {}
        digest = None
        events = self.client.api.push(repository, tag, auth_config=auth, stream=True, decode=True)
        for event in _checked(events, "push"):
            detail = event.get("progressDetail") or {}
            if detail.get("total") and event.get("id"):
                layers[event["id"]] = (detail.get("current", 0), detail["total"])
                done, total = (sum(values) for values in zip(*layers.values(), strict=True))
                progress(done / total, f"pushing {target}")
            digest = (event.get("aux") or {}).get("Digest") or digest
        return digest

    def remove(self, reference: str) -> None:
        # Still used by a container, or already gone: nothing to clean then.
        with contextlib.suppress(docker.errors.APIError):
            self.client.images.remove(reference, noprune=False)


def trust_registry_ca(address: str, ca_pem: str | None, certs_dir: Path = CERTS_DIR) -> str:
    """Make the node's Docker trust the registry's CA (certs.d, read at each push)."""
    if not ca_pem:
        return f"{address} has no CA recorded: Docker uses the system's trust store."
    target = certs_dir / address / "ca.crt"
    try:
        if target.is_file() and target.read_text() == ca_pem:
            return f"The node's Docker already trusts {address}."
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(ca_pem)
    except OSError as exc:
        return f"Could not write {target} ({exc}); pushes work only if Docker trusts {address}."
    return f"The node's Docker now trusts {address} ({target})."


def _checked(events: Iterator[dict[str, Any]], action: str) -> Iterator[dict[str, Any]]:
    try:
        for event in events:
            if event.get("error"):
                raise _classified(str(event["error"]), action)
            yield event
    except (docker.errors.APIError, requests.RequestException) as exc:
        raise _classified(str(exc), action) from exc


def _classified(message: str, action: str) -> Exception:
    lowered = message.lower()
    if "unauthorized" in lowered or "authentication required" in lowered:
        return PermanentError(f"Docker {action} was refused by the registry: {message}")
    if any(word in lowered for word in ("connection refused", "timeout", "no route", "eof")):
        return TransientError(f"Docker {action} failed for now: {message}")
    return PermanentError(f"Docker {action} failed: {message}")
