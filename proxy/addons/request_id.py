"""Request ids: accept the client's X-Request-Id or make one, send it upstream, echo it back."""

from __future__ import annotations

import re

from mitmproxy import http

from proxy.state import REQUEST_ID

HEADER = "x-request-id"
# The portal accepts the same shape, so one id can be followed across every component's logs.
VALID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class RequestIds:
    """Give every request an id the upstream, the client and the logs all see."""

    def request(self, flow: http.HTTPFlow) -> None:
        offered = flow.request.headers.get(HEADER, "")
        # A flow id is a fresh uuid4 already: no extra work for requests without one.
        request_id = offered if VALID.fullmatch(offered) else flow.id
        flow.metadata[REQUEST_ID] = request_id
        flow.request.headers[HEADER] = request_id

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        # Streamed responses leave before the `response` hook runs.
        echo(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        echo(flow)


def echo(flow: http.HTTPFlow) -> None:
    """Put the flow's request id on its response."""
    request_id = flow.metadata.get(REQUEST_ID)
    if request_id and flow.response is not None:
        flow.response.headers[HEADER] = request_id
