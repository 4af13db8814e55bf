"""Volume endpoints: list (with sizes), remove, prune the unused."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from agent.containers import label_filters
from agent.docker_api import DockerAPI, quote_segment
from agent.shapes import volume_summary
from agent.web import Request, Router

# Summing every volume's files takes the engine a while on a big host: allow more than a call.
_DISK_USAGE_TIMEOUT_S = 120.0
# GET /system/df sums every image, container and volume (API 1.41 cannot ask for volumes alone):
# seconds on a busy engine. Sizes this old are shown as they are; a volume it has not seen
# yet makes the next listing measure again.
_DISK_USAGE_MAX_AGE_S = 30.0


class VolumeRoutes:
    """Handlers bound to the agent's single Docker client."""

    def __init__(self, docker: DockerAPI) -> None:
        self.docker = docker
        self._sizes: dict[str, int] = {}
        self._measured: set[str] = set()
        self._sizes_at = float("-inf")
        # one measurement at a time: listings that arrive meanwhile wait for it and share it
        self._sizes_lock = threading.Lock()

    def register(self, router: Router) -> None:
        """Add this module's routes."""
        router.add("GET", "/v1/volumes", self.list)
        router.add("POST", "/v1/volumes/prune", self.prune)
        router.add("DELETE", "/v1/volumes/{name}", self.remove)

    def list(self, request: Request) -> tuple[int, Any]:
        """List volumes; with size=1 (the default) each carries its size on disk."""
        with_sizes = request.flag("size", True)
        volumes = (self.docker.request("GET", "/volumes") or {}).get("Volumes") or []
        sizes = self._volume_sizes({v["Name"] for v in volumes}) if with_sizes else {}
        return 200, [volume_summary(v, sizes.get(v["Name"])) for v in volumes]

    def _volume_sizes(self, names: set[str]) -> dict[str, int]:
        """Return volume sizes from a recent measurement that saw every one of names."""
        requested_at = time.monotonic()
        with self._sizes_lock:
            fresh = requested_at - self._sizes_at < _DISK_USAGE_MAX_AGE_S
            if not (fresh and names <= self._measured):
                self._measure_sizes()
            return self._sizes

    def _measure_sizes(self) -> None:
        usage = self.docker.request("GET", "/system/df", timeout=_DISK_USAGE_TIMEOUT_S) or {}
        sizes: dict[str, int] = {}
        for volume in usage.get("Volumes") or []:
            size = (volume.get("UsageData") or {}).get("Size", -1)
            if size >= 0:  # -1: the engine did not measure it
                sizes[volume["Name"]] = size
        self._measured = {volume["Name"] for volume in usage.get("Volumes") or []}
        self._sizes, self._sizes_at = sizes, time.monotonic()

    def remove(self, request: Request) -> tuple[int, Any]:
        """Remove a volume; one in use is a 409 (force does not override that)."""
        name = quote_segment(request.params["name"])
        self.docker.request("DELETE", f"/volumes/{name}", {"force": int(request.flag("force"))})
        return 204, None

    def prune(self, request: Request) -> tuple[int, Any]:
        """Remove every volume no container uses, named ones included, matching the labels."""
        filters: dict[str, list[str]] = {}
        labels = label_filters(request)
        if labels:
            filters["label"] = labels
        # The agent speaks API 1.41, where a prune takes named volumes too (1.42 needs all=true).
        answer = self.docker.request(
            "POST",
            "/volumes/prune",
            {"filters": json.dumps(filters)},
            timeout=_DISK_USAGE_TIMEOUT_S,
        )
        answer = answer or {}
        deleted = answer.get("VolumesDeleted") or []
        return 200, {"deleted": deleted, "space_reclaimed": answer.get("SpaceReclaimed") or 0}
