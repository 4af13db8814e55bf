"""The `model.import` operation: stage the files, read their facts, store them in Spectr's
registry as one OCI artifact, and record the revision in the catalog."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from portal.artifacts import oci, staging
from portal.artifacts.facts import catalog_fields_from, read_facts
from portal.artifacts.models import ModelFile, ModelRevision
from portal.catalog.model_facts import ModelFacts
from portal.catalog.models import LlmModel
from portal.core.audit import record_audit
from portal.core.errors import SpectrError
from portal.core.operations.kinds import OperationContext, PermanentError, TransientError
from portal.core.uploads import uploads_folder
from portal.extensions import db
from portal.registry import service as registry_service
from portal.registry.errors import RegistryAuthFailed, RegistryTlsFailed, RegistryUnreachable

REGISTRY_SOURCE = "registry"


def repository_of(model_name: str) -> str:
    return f"models/{model_name}"


class ByteProgress:
    """Turns bytes handled into the operation's progress: staging is one half, upload the other."""

    def __init__(self, ctx: OperationContext, total: int, start: float, share: float) -> None:
        self.ctx, self.total, self.start, self.share = ctx, max(total, 1), start, share
        self.done = 0
        self._reported = -1.0

    def __call__(self, size: int, message: str) -> None:
        self.done += size
        fraction = self.start + self.share * min(self.done / self.total, 1.0)
        if fraction - self._reported >= 0.01:  # one progress write per percent, not per MiB
            self._reported = fraction
            self.ctx.progress(fraction, message)


REMOTE_KINDS = ("huggingface", "s3", "registry")


def run_import(ctx: OperationContext) -> dict[str, Any]:
    """Import one model revision: an upload, a folder on the Spectr node, or a remote source."""
    source = ctx.params["source"]
    cleanup = _work_folder(ctx, source)
    try:
        result = _import(ctx, source)
    except Exception as exc:
        # An upload is kept for a retry that will come; otherwise it is dead weight.
        if cleanup and (isinstance(exc, PermanentError) or ctx.attempt >= ctx.max_attempts):
            shutil.rmtree(cleanup, ignore_errors=True)
        raise
    if cleanup:
        shutil.rmtree(cleanup, ignore_errors=True)
    return result


def _import(ctx: OperationContext, source: dict[str, Any]) -> dict[str, Any]:
    registry = registry_service.require_spectr_registry()
    name = ctx.params["name"]
    files = _stage(ctx, source)
    total = sum(f.size for f in files)
    ctx.log(f"{len(files)} file(s), {total} bytes: " + ", ".join(f.path for f in files[:20]))
    read = read_facts(files)
    facts = read.to_dict()
    ctx.log(f"Facts read from the files: {_facts_line(facts)}")
    for note in read.notes:
        ctx.log(f"Note: {note}")
    existing = _latest_revision(name)
    number = (existing.number if existing else 0) + 1
    config = oci.config_document(facts.get("format") or "unknown", facts, files)
    upload = ByteProgress(ctx, total, 0.5, 0.45)
    try:
        with registry_service.client_for(registry, timeout=300) as client:
            pushed = oci.push_model(
                client, repository_of(name), f"r{number}", files, config, upload
            )
    except (RegistryAuthFailed, RegistryTlsFailed) as exc:
        raise PermanentError(exc.message) from None
    except RegistryUnreachable as exc:
        raise TransientError(exc.message) from None
    ctx.log(
        f"Stored in {registry.address}/{repository_of(name)}:r{number} ({pushed.digest}): "
        f"{pushed.files_uploaded} file(s) uploaded ({pushed.bytes_uploaded} bytes), "
        f"{pushed.files_present} already there."
    )
    if existing and existing.manifest_digest == pushed.digest:
        ctx.log(f"Revision {existing.number} has the same files: no new revision.")
        return _result(existing, pushed, unchanged=True)
    revision = _record(ctx, name, number, files, read, pushed.digest, source)
    return _result(revision, pushed, unchanged=False)


def _work_folder(ctx: OperationContext, source: dict[str, Any]) -> Path | None:
    """Where this import's staged copies live (removed at the end); None when read in place."""
    if source["kind"] == "upload":
        return Path(source["path"]).parent
    if source["kind"] in REMOTE_KINDS:
        return uploads_folder() / f"remote-{ctx.operation_id}"
    return None


def _stage(ctx: OperationContext, source: dict[str, Any]) -> list[oci.StagedFile]:
    if source["kind"] in REMOTE_KINDS:
        return _stage_remote(ctx, source)
    path = Path(source["path"])
    size = path.stat().st_size if path.is_file() else _folder_size(path)
    progress: Callable[[int, str], None] = ByteProgress(ctx, size, 0.0, 0.5)
    try:
        if source["kind"] == "folder":  # a file or a folder on the Spectr node, read in place
            if path.is_file():
                return staging.stage_single_file(path, path.name, progress)
            return staging.stage_folder(path, progress)
        if not path.is_file():
            raise PermanentError("The uploaded file is gone; upload it again.")
        if source.get("archive"):
            unpacked = path.parent / "files"
            shutil.rmtree(unpacked, ignore_errors=True)  # a retry starts from the archive again
            return staging.stage_archive(path, unpacked, progress)
        return staging.stage_single_file(path, source["filename"], progress)
    except staging.StagingError as exc:
        raise PermanentError(str(exc)) from None


def _stage_remote(ctx: OperationContext, source: dict[str, Any]) -> list[oci.StagedFile]:
    from portal.artifacts.sources import open_remote

    folder = _work_folder(ctx, source)
    assert folder is not None
    try:
        with open_remote(source) as remote:
            listed = remote.files()
            total = sum(item.size or 0 for item in listed)
            ctx.log(f"{remote.describe()}: {len(listed)} file(s), {total} bytes to download.")
            progress = ByteProgress(ctx, total, 0.0, 0.5)
            return staging.stage_remote(remote, folder, progress)
    except staging.StagingError as exc:
        raise PermanentError(str(exc)) from None
    except SpectrError as exc:  # the other registry: unreachable is worth a retry
        error = TransientError if getattr(exc, "transient", False) else PermanentError
        raise error(exc.message) from None


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def _latest_revision(name: str) -> ModelRevision | None:
    return db.session.scalar(
        select(ModelRevision)
        .join(LlmModel, LlmModel.id == ModelRevision.model_id)
        .where(LlmModel.name == name)
        .order_by(ModelRevision.number.desc())
        .limit(1)
    )


def _record(
    ctx: OperationContext,
    name: str,
    number: int,
    files: list[oci.StagedFile],
    facts: ModelFacts,
    digest: str,
    source: dict[str, Any],
) -> ModelRevision:
    model = _catalog_entry(ctx, name, facts, ctx.params.get("overrides") or {})
    revision = ModelRevision(
        model_id=model.id,
        number=number,
        repository=repository_of(name),
        tag=f"r{number}",
        manifest_digest=digest,
        size_bytes=sum(f.size for f in files),
        format=facts.format,
        facts=facts.to_dict(),
        source=_described(source),
        operation_id=ctx.operation_id,
        created_by=ctx.params.get("requested_by"),
        files=[ModelFile(path=f.path, digest=f.digest, size_bytes=f.size) for f in files],
    )
    db.session.add(revision)
    record_audit("model.import", f"model:{name}", details={"revision": number, "digest": digest})
    db.session.commit()
    ctx.progress(1.0, f"revision {number} of {name} stored")
    return revision


# What a new catalog entry needs when neither the files nor the person said it.
FALLBACKS = {"family": "unknown", "parameters_billions": 0.001, "quantization": "fp16",
             "format": "other", "context_length": 2048}  # fmt: skip


def _catalog_entry(
    ctx: OperationContext, name: str, facts: ModelFacts, overrides: dict[str, Any]
) -> LlmModel:
    """The catalog's model, created or updated from the facts; a field given by hand wins."""
    values = {**catalog_fields_from(facts), **overrides}
    model = db.session.scalar(select(LlmModel).filter_by(name=name))
    if model is None:
        missing = [field for field in FALLBACKS if field not in values]
        if missing:
            ctx.log(f"Not in the files: {', '.join(missing)}; set them on the model's page.")
        values = {**FALLBACKS, **values}
        model = LlmModel(name=name, license=values.pop("license", "unknown"), description="")
        db.session.add(model)
    for field, value in values.items():
        setattr(model, field, value)
    model.source_kind, model.source = REGISTRY_SOURCE, repository_of(name)
    db.session.flush()
    return model


def _described(source: dict[str, Any]) -> dict[str, Any]:
    if source["kind"] == "upload":
        return {"kind": "upload", "filename": source.get("filename")}
    return {key: value for key, value in source.items() if key != "archive"}


def _facts_line(facts: dict[str, Any]) -> str:
    keys = ("format", "architecture", "parameters", "quantization", "context_length")
    return ", ".join(f"{key} {facts.get(key)}" for key in keys if facts.get(key) is not None)


def _result(revision: ModelRevision, pushed: oci.PushedArtifact, unchanged: bool) -> dict[str, Any]:
    return {
        "model_id": revision.model_id,
        "revision": revision.number,
        "digest": revision.manifest_digest,
        "size_bytes": revision.size_bytes,
        "bytes_uploaded": pushed.bytes_uploaded,
        "files_uploaded": pushed.files_uploaded,
        "files_already_stored": pushed.files_present,
        "unchanged": unchanged,
    }
