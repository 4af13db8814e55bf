"""A model's facts from its files (catalog.model_facts), in the catalog's own terms."""

from __future__ import annotations

from functools import partial
from typing import Any

from portal.artifacts.oci import StagedFile
from portal.catalog.model_facts import ModelFacts, catalog_fields, facts_from_files
from portal.catalog.vram import BYTES_PER_PARAMETER
from portal.core.operations.kinds import PermanentError

WEIGHT_FORMATS = ("gguf", "safetensors")


def read_facts(files: list[StagedFile]) -> ModelFacts:
    """Read the facts of a staged model; weights whose header cannot be read fail the import."""
    facts = facts_from_files((f.path, partial(f.local.open, "rb"), f.size) for f in files)
    if facts.format in WEIGHT_FORMATS and facts.parameters is None:
        reasons = "; ".join(facts.notes) or "no tensor could be read"
        raise PermanentError(f"The model's files cannot be read: {reasons}")
    return facts


def catalog_fields_from(facts: ModelFacts) -> dict[str, Any]:
    """The catalog columns the facts fill (others are left out for a person to give)."""
    values = catalog_fields(facts)
    if values.get("format") not in WEIGHT_FORMATS:
        values["format"] = "other"
    if values.get("parameters_billions") is not None:
        values["parameters_billions"] = max(values["parameters_billions"], 0.001)
    if "quantization" not in values and facts.parameters and facts.size_bytes:
        # A type the VRAM table has no row for (iq2_xs, say): the nearest by bytes per weight.
        per_weight = facts.size_bytes / facts.parameters
        values["quantization"] = min(
            BYTES_PER_PARAMETER, key=lambda q: abs(BYTES_PER_PARAMETER[q] - per_weight)
        )
    return values
