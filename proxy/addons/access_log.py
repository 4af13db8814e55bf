"""Access log: one JSON line per finished request, without secrets."""

from __future__ import annotations

import json
import time
from typing import TextIO

from mitmproxy import http

from proxy.addons.metrics import labels
from proxy.state import TARGET, Target


class AccessLog:
    """Write who asked for what, where it went, the status and the time it took."""

    def __init__(self, out: TextIO | None) -> None:
        self.out = out

    def response(self, flow: http.HTTPFlow) -> None:
        self._write(flow, flow.response.status_code if flow.response else 502, "")

    def error(self, flow: http.HTTPFlow) -> None:
        target: Target | None = flow.metadata.get(TARGET)
        timed_out = target is not None and target.timed_out
        self._write(flow, 502, "upstream_timeout" if timed_out else str(flow.error or "error"))

    def _write(self, flow: http.HTTPFlow, status: int, error: str) -> None:
        if self.out is None:
            return
        target_label, model, key = labels(flow)
        target: Target | None = flow.metadata.get(TARGET)
        request = flow.request
        end = (flow.response.timestamp_end if flow.response else None) or time.time()
        entry = {
            "ts": round(request.timestamp_start, 3),
            "client": flow.client_conn.peername[0] if flow.client_conn.peername else "",
            "method": request.method,
            "host": request.headers.get("x-forwarded-host", request.host_header or ""),
            "path": request.path.split("?", 1)[0],
            "status": status,
            "ms": round((end - request.timestamp_start) * 1000, 2),
            "target": target_label,
            "replica": target.replica.id if target else "",
            "model": model,
            "key": key,
        }
        if error:
            entry["error"] = error
        self.out.write(json.dumps(entry) + "\n")
        self.out.flush()
