"""`spectr catalog seed|models`: the shipped catalog and the models' VRAM estimates."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from portal.catalog import seeding, service


@click.group("catalog", cls=AppGroup)
def catalog_group() -> None:
    """Catalog: the shipped runtimes and models, VRAM estimates."""


@catalog_group.command("seed")
def seed_command() -> None:
    """Add the shipped runtimes, models and images that are missing."""
    added = seeding.seed_catalog()
    click.echo(", ".join(f"{count} {kind}" for kind, count in added.items()) + " added")


@catalog_group.command("models")
def models_command() -> None:
    """List catalog models with their VRAM estimate at full context."""
    for entry in service.list_models():
        estimate = service.estimate_for(entry)
        click.echo(
            f"{entry.id:>4}  {entry.name:<36} {entry.quantization:<7} {estimate.total_mib:>8} MiB"
        )
