"""`spectr monitoring ...`: the scrape credentials for Prometheus (token, client certificate)."""

from __future__ import annotations

import secrets

import click
from flask.cli import with_appcontext

SCRAPE_USER = "prometheus"


@click.group("monitoring")
def monitoring_group() -> None:
    """Monitoring: Prometheus scrape credentials."""


@monitoring_group.command("client-certificate")
@click.option("--name", default="spectr-prometheus", show_default=True, help="Common name.")
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True)
@with_appcontext
def client_certificate(name: str, days: int) -> None:
    """Print a client certificate and its key (PEM) from the Spectr CA for Prometheus.

    Agents bootstrapped by the portal require one (mutual TLS) besides the scrape token: give
    them to spectr.core.monitoring as monitoring_client_cert and monitoring_client_key.
    """
    from portal.core.pki import issue_client_certificate

    certificate, key = issue_client_certificate(name, days)
    click.echo("Keep the key secret (it is shown once).", err=True)
    click.echo(certificate + key, nl=False)


@monitoring_group.command("scrape-token")
@click.option("--username", default=SCRAPE_USER, show_default=True)
@click.option("--days", type=int, default=365, show_default=True, help="Days until it expires.")
@with_appcontext
def scrape_token(username: str, days: int) -> None:
    """Create a viewer user for Prometheus if missing, and print a new token for it (once)."""
    from portal.admin import service
    from portal.core.errors import NotFound

    try:
        user = service.get_user_by_name(username)
    except NotFound:
        # Nobody logs in as this user: a long random password nobody is told.
        user = service.create_user(username, secrets.token_urlsafe(32), "viewer")
        click.echo(f"Created viewer '{username}' for Prometheus.", err=True)
    if user.role != "viewer":
        raise click.ClickException(
            f"'{username}' is {user.role}; a scrape credential must be a viewer."
        )
    _, plaintext = service.create_token(user, "prometheus-scrape", days)
    click.echo(plaintext)
