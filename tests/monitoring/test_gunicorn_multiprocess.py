"""Under gunicorn with several workers, one scrape of /metrics sums every worker's requests."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from agent.tests.harness import free_port
from tests.monitoring.processes import PortalProcess, wait_for
from tests.support.process_group import stop_process_group

pytestmark = pytest.mark.slow
GUNICORN = Path(sys.executable).parent / "gunicorn"
REQUESTS = 40


def healthz_count(text: str) -> float:
    pattern = r'^spectr_http_request_duration_seconds_count\{method="GET",route="/healthz",status="200"\} (\S+)$'
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_metrics_sum_requests_served_by_every_gunicorn_worker(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    instance.mkdir()
    multiproc = tmp_path / "prometheus-multiproc"
    multiproc.mkdir()
    portal = PortalProcess(instance)
    portal.cli("init")
    token = portal.cli("monitoring", "scrape-token").strip().splitlines()[-1]
    port = free_port()
    env = {**portal.env, "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [str(GUNICORN), "-w", "3", "-b", f"127.0.0.1:{port}", "portal.app:create_app()"],
            env=env, cwd=instance, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/healthz").status_code == 200, 60, "gunicorn", log)
        before = healthz_count(
            httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}).text
        )
        for _ in range(REQUESTS):
            # A new connection each time, so the requests spread over the workers.
            httpx.get(f"{url}/healthz", headers={"Connection": "close"})
        for _ in range(6):
            answer = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"})
            assert healthz_count(answer.text) == before + REQUESTS
        worker_files = list(multiproc.glob("histogram_*.db"))
    finally:
        stop_process_group(server, 20)

    assert len(worker_files) >= 2, "requests should have reached more than one worker"
