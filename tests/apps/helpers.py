"""Small helpers of the application tests: reach a deployed server, read an operation, sign
in to the pages."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient

from tests.portal.conftest import PASSWORD, ApiClient


def log_in(client: FlaskClient, create_user: Callable[..., Any], role: str = "operator") -> str:
    """Sign a new user with `role` in to the pages; return the page's CSRF token."""
    user = create_user(role)
    answer = client.post("/login", data={"username": user.username, "password": PASSWORD})
    assert answer.status_code == 302
    page = client.get("/catalog").get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)  # type: ignore[union-attr]


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
