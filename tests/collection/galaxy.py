"""spectr.core's galaxy.yml, the one place the collection's version is kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

COLLECTION = Path(__file__).resolve().parents[2] / "ansible_collections" / "spectr" / "core"


def galaxy_metadata() -> dict[str, Any]:
    """Return galaxy.yml as a mapping."""
    return yaml.safe_load((COLLECTION / "galaxy.yml").read_text())


def collection_version() -> str:
    """Return the collection's version, as galaxy.yml says it."""
    return str(galaxy_metadata()["version"])


def tarball_name() -> str:
    """Return the file name `ansible-galaxy collection build` gives the collection's tarball."""
    return f"spectr-core-{collection_version()}.tar.gz"
