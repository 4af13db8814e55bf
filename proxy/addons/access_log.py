"""Access log: one JSON line per finished request, without secrets."""

from __future__ import annotations

import json
import time
from typing import TextIO

from mitmproxy import http

from proxy.addons.metrics import labels
from proxy.addons.routing import FAILURE
from proxy.error_hook import CLIENT_CLOSED_STATUS, answered_in_full, client_cancelled
from proxy.state import GATEWAY, REQUEST_ID, TARGET, GatewayRequest, Target


class AccessLog:
    """Write who asked for what, where it went, the status and the time it took."""

    def __init__(self, out: TextIO | None) -> None:
        self.out = out

    def response(self, flow: http.HTTPFlow) -> None:
        self._write(flow, flow.response.status_code if flow.response else 502, "")

    def error(self, flow: http.HTTPFlow) -> None:
        if answered_in_full(flow):  # the client closed after the last event: a success
            self.response(flow)
            return
        if client_cancelled(flow):
            self._write(flow, CLIENT_CLOSED_STATUS, "client_cancelled")
            return
        target: Target | None = flow.metadata.get(TARGET)
        timed_out = target is not None and target.timed_out
        error = flow.metadata.get(FAILURE) or (
            "upstream_timeout" if timed_out else str(flow.error or "error")
        )
        # The routing addon answers upstream failures itself (502/504); otherwise mitmproxy's 502.
        self._write(flow, flow.response.status_code if flow.response else 502, error)

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
            "request_id": flow.metadata.get(REQUEST_ID, ""),
        }
        if target is not None and target.attempts > 1:
            entry["attempts"] = target.attempts
        gateway: GatewayRequest | None = flow.metadata.get(GATEWAY)
        if gateway is not None and gateway.fallback_from:
            entry["fallback_from"] = gateway.fallback_from
        if error:
            entry["error"] = error
            if flow.error and error != str(flow.error):
                entry["detail"] = str(flow.error)
        self.out.write(json.dumps(entry) + "\n")
        self.out.flush()
