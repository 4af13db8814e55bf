"""The request id reaches a real ansible-runner run: its environment and its first log line."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.automation import run_playbook
from portal.core.logging import current_request_id, request_id_bound

PLAYBOOK = str(Path(__file__).parent / "playbooks" / "request_id.yml")


@pytest.mark.slow
def test_bound_request_id_is_in_the_run_env_and_its_first_log_line():
    lines: list[str] = []
    with request_id_bound("op-7d1e.req-42"):
        result = run_playbook(PLAYBOOK, [], log=lambda line, level: lines.append(line))
    assert result.succeeded, lines
    assert lines[0] == "Running request_id.yml (request_id=op-7d1e.req-42)."
    assert result.facts["localhost"]["seen_request_id"] == "op-7d1e.req-42"
    assert current_request_id() is None  # the binding ends with the block


@pytest.mark.slow
def test_run_without_a_request_id_says_so():
    lines: list[str] = []
    result = run_playbook(PLAYBOOK, [], log=lambda line, level: lines.append(line))
    assert result.succeeded, lines
    assert lines[0] == "Running request_id.yml (request_id=-)."
    assert result.facts["localhost"]["seen_request_id"] == ""
