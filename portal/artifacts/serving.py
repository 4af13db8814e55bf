"""How a runtime container sees an imported model: the host's cache folder mounted read-only
at /models/<name>, the entry file runtimes are pointed at, and offline switches."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import select

from portal.artifacts.models import PRESENT, HostModel, ModelRevision
from portal.catalog.models import LlmModel
from portal.extensions import db
from portal.hosts.models import Host

AGENT_MODELS_DIR = "/var/lib/spectr/models"  # the agent role's default agent_models_dir
# Runtimes built on huggingface_hub / transformers must never try to reach the Hub.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
REVISION_LABEL, DIGEST_LABEL = "spectr.model.revision", "spectr.model.digest"


@dataclass(frozen=True)
class ModelMount:
    model_source: str
    volumes: list[str]
    env: dict[str, str] = field(default_factory=lambda: dict(OFFLINE_ENV))
    labels: dict[str, str] = field(default_factory=dict)


def host_folder(host: Host, revision: ModelRevision) -> str:
    """Where the host's cache keeps (or will keep) the revision's files."""
    held = db.session.scalar(
        select(HostModel.path).filter_by(host_id=host.id, revision_id=revision.id, state=PRESENT)
    )
    if held:
        return held
    root = current_app.config["SPECTR_MODELS_DIR"] if host.is_local else AGENT_MODELS_DIR
    return f"{root.rstrip('/')}/{revision.folder_name}"


def entry_file(revision: ModelRevision) -> str | None:
    """The file a GGUF runtime loads: the first shard (-00001-of-) or the largest .gguf."""
    ggufs = [f for f in revision.files if f.path.endswith(".gguf")]
    if not ggufs:
        return None
    shards = sorted(f.path for f in ggufs if "-00001-of-" in f.path)
    return shards[0] if shards else max(ggufs, key=lambda f: f.size_bytes).path


def model_mount(model: LlmModel, revision: ModelRevision, host: Host) -> ModelMount:
    """The mount, model path and labels a deployment of this revision on this host uses."""
    inside = f"/models/{model.name}"
    entry = entry_file(revision)
    return ModelMount(
        model_source=f"{inside}/{entry}" if entry else inside,
        volumes=[f"{host_folder(host, revision)}:{inside}:ro"],
        labels={REVISION_LABEL: str(revision.number), DIGEST_LABEL: revision.manifest_digest},
    )
