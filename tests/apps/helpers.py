"""Small helpers of the application tests: reach a deployed server, read an operation."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from tests.portal.conftest import ApiClient


def get_json(url: str, attempts: int = 60) -> Any:
    """GET a JSON document, retrying while the server starts (bounded: ~15 s)."""
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.25)
    return None


def refuses(url: str) -> bool:
    """True when nothing answers at `url`."""
    try:
        urllib.request.urlopen(url, timeout=2).close()
    except (urllib.error.URLError, ConnectionError):
        return True
    return False


def operation(api: ApiClient, operation_id: str) -> dict[str, Any]:
    answer = api.get(f"/api/v1/operations/{operation_id}")
    assert answer.status_code == 200
    return answer.json


def succeeded(api: ApiClient, operation_id: str) -> dict[str, Any]:
    """The operation, asserting it succeeded (its log is in the failure message if not)."""
    op = operation(api, operation_id)
    if op["state"] != "succeeded":
        log = api.get(f"/api/v1/operations/{operation_id}/log").json["lines"]
        tail = "\n".join(line["message"] for line in log[-15:])
        raise AssertionError(f"operation {op['kind']} {op['state']}: {op['error']}\n{tail}")
    return op
