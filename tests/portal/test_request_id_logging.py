"""The portal's JSON log lines carry the request id bound for a worker's operation."""

from __future__ import annotations

import json
import logging

from portal.core.logging import JsonFormatter, current_request_id, request_id_bound


def line(message: str) -> dict:
    record = logging.LogRecord("portal.test", logging.INFO, __file__, 1, message, (), None)
    return json.loads(JsonFormatter().format(record))


def test_bound_request_id_is_on_each_line_and_ends_with_its_block():
    with request_id_bound("op-5"):
        assert current_request_id() == "op-5"
        inside = line("in the worker")
        with request_id_bound("op-6"):
            nested = line("nested")
        after_nested = line("back")
    outside = line("after")
    assert (inside["request_id"], nested["request_id"], after_nested["request_id"]) == (
        "op-5",
        "op-6",
        "op-5",
    )
    assert "request_id" not in outside
    assert current_request_id() is None
