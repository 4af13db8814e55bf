"""A portal, in this process, relaying a real agent's container logs over HTTP (SSE).

Used by bench/agent_logs.py for its "through agent + portal" row: the agent gets a certificate
from the portal's own CA, a host row points at it, and the portal's relay endpoint
`GET /api/v1/hosts/{id}/containers/{name}/logs?follow=1` is read like any API client would.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
from flask_migrate import upgrade
from werkzeug.serving import make_server

from agent.tests.harness import AgentProcess
from portal.admin import service as admin
from portal.app import create_app
from portal.core.pki import issue_server_certificate
from portal.extensions import db
from portal.hosts.models import READY, Host


@contextlib.contextmanager
def portal_relaying_an_agent() -> Iterator[tuple[str, str, int, AgentProcess]]:
    """Yield (portal URL, bearer token, host id, agent) with everything running on 127.0.0.1."""
    with tempfile.TemporaryDirectory(prefix="spectr-bench-relay-") as folder:
        app = create_app({"SPECTR_INSTANCE_PATH": folder, "SPECTR_LOG_LEVEL": "WARNING"})
        with app.app_context():
            upgrade(directory=app.extensions["migrate"].directory)
            cert, key = issue_server_certificate("bench-agent", ["127.0.0.1"])
            (Path(folder) / "agent.crt").write_text(cert)
            (Path(folder) / "agent.key").write_text(key)
            agent = AgentProcess(
                Path(folder), (str(Path(folder) / "agent.crt"), str(Path(folder) / "agent.key"))
            ).start()
            user = admin.create_user("bench", "bench password 123", "viewer")
            _, token = admin.create_token(user, "bench", 1)
            host = Host(name="bench-host", address="127.0.0.1", status=READY,
                        agent_url=agent.url, agent_token=agent.token)  # fmt: skip
            db.session.add(host)
            db.session.commit()
            host_id = host.id
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log in the figures
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_port}", token, host_id, agent
        finally:
            server.shutdown()
            agent.stop()


def relay_lines(portal: str, token: str, host_id: int, name: str, follow: bool) -> Iterator[str]:
    """Yield log data received through the portal's SSE relay."""
    path = f"/api/v1/hosts/{host_id}/containers/{name}/logs"
    params = {"follow": "1" if follow else "0", "tail": "0" if follow else "10000000"}
    headers = {"Authorization": f"Bearer {token}"}
    client = httpx.Client(base_url=portal, headers=headers, timeout=None, trust_env=False)
    with client, client.stream("GET", path, params=params) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data: "):
                data = json.loads(line[6:]).get("data")
                if data is not None:
                    yield data
