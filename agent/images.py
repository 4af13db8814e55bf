"""Image endpoints: list, inspect, remove, and pull with streamed progress."""

from __future__ import annotations

import base64
import json
from typing import Any

from agent.containers import label_filters
from agent.docker_api import DockerAPI, DockerError, quote_segment
from agent.errors import from_docker, invalid
from agent.shapes import image_summary
from agent.web import Request, Router

_PULL_SILENCE_S = 600.0  # the engine reports progress often; this long a silence is a hang


def split_reference(reference: str) -> tuple[str, str]:
    """Split an image reference into (name, tag or digest); no tag means latest."""
    if "@" in reference:
        name, _, digest = reference.partition("@")
        return name, digest
    name, _, tag = reference.rpartition(":")
    if name and "/" not in tag:
        return name, tag
    return reference, "latest"


def _registry_auth(auth: Any) -> str | None:
    if auth is None:
        return None
    if not isinstance(auth, dict) or not all(isinstance(v, str) for v in auth.values()):
        raise invalid("auth must be an object of strings (username, password, serveraddress)")
    allowed = {
        k: auth[k] for k in ("username", "password", "serveraddress", "identitytoken") if k in auth
    }
    return base64.urlsafe_b64encode(json.dumps(allowed).encode()).decode()


def _progress_line(event: dict[str, Any]) -> dict[str, Any]:
    detail = event.get("progressDetail") or {}
    line = {"status": event.get("status"), "id": event.get("id")}
    if detail.get("total"):
        line.update(current=detail.get("current"), total=detail.get("total"))
    return {key: value for key, value in line.items() if value is not None}


class ImageRoutes:
    """Handlers bound to the agent's single Docker client."""

    def __init__(self, docker: DockerAPI) -> None:
        self.docker = docker

    def register(self, router: Router) -> None:
        """Add this module's routes."""
        router.add("GET", "/v1/images", self.list)
        router.add("POST", "/v1/images/pull", self.pull)
        router.add("POST", "/v1/images/prune", self.prune)
        router.add("GET", "/v1/images/{reference:path}", self.inspect)
        router.add("DELETE", "/v1/images/{reference:path}", self.remove)

    def list(self, request: Request) -> tuple[int, Any]:
        """List local images."""
        entries = self.docker.request("GET", "/images/json")
        return 200, [image_summary(entry) for entry in entries]

    def inspect(self, request: Request) -> tuple[int, Any]:
        """Return one image by reference or id."""
        reference = quote_segment(request.params["reference"])
        return 200, image_summary(self.docker.request("GET", f"/images/{reference}/json"))

    def remove(self, request: Request) -> tuple[int, Any]:
        """Remove an image; a used image needs force (409 otherwise)."""
        reference = quote_segment(request.params["reference"])
        params = {"force": int(request.flag("force")), "noprune": int(request.flag("noprune"))}
        deleted = self.docker.request("DELETE", f"/images/{reference}", params)
        return 200, {"deleted": deleted or []}

    def prune(self, request: Request) -> tuple[int, Any]:
        """Remove dangling images (no tag, no container) carrying every given label."""
        filters = {"dangling": ["true"], "label": label_filters(request)}
        params = {"filters": json.dumps({k: v for k, v in filters.items() if v})}
        answer = self.docker.request("POST", "/images/prune", params, timeout=300) or {}
        deleted = [
            item["Deleted"] for item in answer.get("ImagesDeleted") or [] if "Deleted" in item
        ]
        return 200, {"deleted": deleted, "space_reclaimed": answer.get("SpaceReclaimed") or 0}

    def pull(self, request: Request) -> None:
        """Pull an image, streaming progress as JSON lines, ending with done or error."""
        spec = request.json()
        reference = spec.get("image")
        if not isinstance(reference, str) or not reference.strip():
            raise invalid("image: must be an image reference such as registry:5000/repo:tag")
        name, tag = split_reference(reference.strip())
        auth = _registry_auth(spec.get("auth"))
        headers = {"X-Registry-Auth": auth} if auth else {}
        stream = self.docker.open_stream(
            "POST",
            "/images/create",
            {"fromImage": name, "tag": tag},
            headers=headers,
            timeout=_PULL_SILENCE_S,
        )
        writer = request.stream()
        try:
            for raw in stream.iter_lines():
                event = json.loads(raw)
                if "error" in event:
                    failure = from_docker(DockerError(500, str(event["error"])))
                    writer.write_json({"error": failure.body()})
                    return
                writer.write_json(_progress_line(event))
            pulled = self.docker.request("GET", f"/images/{quote_segment(reference)}/json")
            writer.write_json({"status": "done", "image": image_summary(pulled)})
        except DockerError as error:
            writer.write_json({"error": from_docker(error).body()})
        except TimeoutError:
            silent = DockerError(0, f"engine sent no pull progress for {_PULL_SILENCE_S:.0f} s")
            writer.write_json({"error": from_docker(silent).body()})
        finally:
            stream.close()
            writer.close()
