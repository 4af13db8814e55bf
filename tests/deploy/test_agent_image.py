"""The spectr-agent image: started as deploy/README.md says, on this machine's Docker engine."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import ssl
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from agent.tests.harness import CertificateAuthority
from tests.deploy.stack import free_port, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def test_agent_image_serves_its_api_over_tls_on_the_host_engine(
    deploy_images: dict[str, str], tmp_path: Path
) -> None:
    ca = CertificateAuthority.create("deploytest", tmp_path)
    cert, key = ca.issue("agent", server=True)
    token = secrets.token_urlsafe(24)
    port, name = free_port(), f"spectr-deploytest-agent-{uuid.uuid4().hex[:8]}"
    socket_gid = os.stat("/var/run/docker.sock").st_gid
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:7443",
         "--group-add", str(socket_gid), "-v", "/var/run/docker.sock:/var/run/docker.sock",
         "-v", f"{cert}:/etc/spectr-agent/tls.crt:ro", "-v", f"{key}:/etc/spectr-agent/tls.key:ro",
         "-e", "SPECTR_AGENT_TLS_CERT=/etc/spectr-agent/tls.crt",
         "-e", "SPECTR_AGENT_TLS_KEY=/etc/spectr-agent/tls.key",
         "-e", f"SPECTR_AGENT_TOKEN_SHA256={hashlib.sha256(token.encode()).hexdigest()}",
         deploy_images["agent"]],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        trust = ssl.create_default_context(cafile=ca.cert_path)
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=trust, timeout=10) as agent:
            health = wait_for(
                "the agent's /v1/health",
                lambda: (
                    (
                        r := agent.get("/v1/health", headers={"Authorization": f"Bearer {token}"})
                    ).status_code
                    == 200
                    and r
                ),
                timeout=60,
            )
            assert health.json()["engine"]["reachable"] is True
            assert agent.get("/v1/health").status_code == 401
            images = agent.get("/v1/images", headers={"Authorization": f"Bearer {token}"})
            assert any(deploy_images["agent"] in image["tags"] for image in images.json())
        details = json.loads(
            subprocess.run(
                ["docker", "inspect", name], check=True, capture_output=True, text=True
            ).stdout
        )[0]
        assert details["Config"]["User"] == "spectr"
        # The image's HEALTHCHECK command passes inside the running container.
        check = details["Config"]["Healthcheck"]["Test"]
        assert check[0] == "CMD"
        probe = subprocess.run(["docker", "exec", name, *check[1:]], capture_output=True)
        assert probe.returncode == 0, probe.stderr
    except BaseException:
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
        print(logs.stdout[-4000:], logs.stderr[-4000:])
        raise
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
