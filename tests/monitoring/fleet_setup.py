"""Put real things into a running portal's database: its own node, and a host whose agent runs."""

from __future__ import annotations

from pathlib import Path

from agent.tests.harness import AgentProcess


def issue_agent_certificate(instance: Path) -> tuple[str, str]:
    """Have the portal's Spectr CA sign a 127.0.0.1 server certificate; return file paths."""
    from portal.core.pki import issue_server_certificate

    cert_pem, key_pem = issue_server_certificate("agent", ["127.0.0.1"], str(instance))
    cert, key = instance / "agent-cert.pem", instance / "agent-key.pem"
    cert.write_text(cert_pem)
    key.write_text(key_pem)
    key.chmod(0o600)
    return str(cert), str(key)


def register_hosts(instance: Path, agent: AgentProcess, health_interval_s: int = 5) -> None:
    """The Spectr node itself plus a bootstrapped host on `agent`, as a bootstrap leaves it."""
    from portal.app import create_app
    from portal.core.timeutil import utcnow
    from portal.extensions import db
    from portal.hosts.models import Host
    from portal.hosts.service import ensure_local_host
    from portal.settings.service import update_settings

    app = create_app({"SPECTR_INSTANCE_PATH": str(instance)})
    with app.app_context():
        ensure_local_host()
        db.session.add(
            Host(
                name="agent-under-test",
                address="127.0.0.1",
                agent_url=agent.url,
                agent_port=agent.port,
                agent_token=agent.token,
                bootstrapped_at=utcnow(),
            )
        )
        db.session.commit()
        update_settings({"health_check_interval_seconds": health_interval_s}, actor="test")
        db.session.remove()
        db.engine.dispose()
