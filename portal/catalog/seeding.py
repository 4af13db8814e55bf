"""Load the shipped catalog (portal/seeds/catalog.json); entries already present are kept."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from portal.catalog.models import CatalogImage, LlmModel, Runtime
from portal.catalog.references import parse_image_reference
from portal.core.audit import record_audit
from portal.extensions import db

SEED_FILE = Path(__file__).resolve().parents[1] / "seeds" / "catalog.json"


def seed_catalog(path: Path = SEED_FILE) -> dict[str, int]:
    """Add the seed entries missing from the catalog; return how many of each were added."""
    data = json.loads(path.read_text())
    added = {
        "runtimes": _add_missing(Runtime, "name", data["runtimes"]),
        "models": _add_missing(LlmModel, "name", data["models"]),
        "images": _add_missing(CatalogImage, "reference", [_image(e) for e in data["images"]]),
    }
    record_audit("catalog.seed", "catalog", details=added)
    db.session.commit()
    return added


def missing_counts(path: Path = SEED_FILE) -> dict[str, int]:
    """How many shipped runtimes, models and images the catalog lacks (what seeding adds)."""
    data = json.loads(path.read_text())
    return {
        "runtimes": len(_missing(Runtime, "name", data["runtimes"])),
        "models": len(_missing(LlmModel, "name", data["models"])),
        "images": len(_missing(CatalogImage, "reference", data["images"])),
    }


def _missing(model: type, key: str, entries: list[dict]) -> list[dict]:
    existing = set(db.session.scalars(select(getattr(model, key))))
    return [entry for entry in entries if entry[key] not in existing]


def _add_missing(model: type, key: str, entries: list[dict]) -> int:
    fresh = _missing(model, key, entries)
    db.session.add_all(model(**entry) for entry in fresh)
    return len(fresh)


def _image(entry: dict) -> dict:
    parsed = parse_image_reference(entry["reference"])
    return {
        **entry,
        "registry_host": parsed.registry,
        "repository": parsed.repository,
        "tag": parsed.tag,
    }
