"""Getting images into Spectr's registry: import an uploaded archive, mirror an image.

Both run as operations; progress is reported per step (load, then each push; or bytes copied).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import IO, Any

from portal.core.operations.kinds import OperationContext, PermanentError
from portal.core.uploads import receive_body, uploads_folder
from portal.registry import service
from portal.registry.copy import ImageCopier
from portal.registry.engine_images import (
    NodeEngine,
    archive_tags,
    repository_path,
    trust_registry_ca,
)
from portal.registry.errors import RegistryAuthFailed, RegistryNotFound, RegistryTlsFailed


def receive_upload(stream: IO[bytes], expected_size: int | None) -> tuple[Path, int]:
    """Write a request body to a file under the instance folder, one chunk at a time."""
    path = uploads_folder() / f"import-{uuid.uuid4().hex}.tar"
    return path, receive_body(stream, expected_size, path, "`docker save` archive")


def import_archive(ctx: OperationContext) -> dict[str, Any]:
    """Load an uploaded archive into the node's engine and push its images to Spectr's registry."""
    path = Path(ctx.params["path"])
    if not path.is_file():
        raise PermanentError("The uploaded archive is gone; upload it again.")
    try:
        result = _import(ctx, path)
    except Exception as exc:
        # Keep the archive only for a retry that will come; otherwise it is dead weight.
        if isinstance(exc, PermanentError) or ctx.attempt >= ctx.max_attempts:
            path.unlink(missing_ok=True)
        raise
    path.unlink(missing_ok=True)
    return result


def _import(ctx: OperationContext, path: Path) -> dict[str, Any]:
    registry = service.require_spectr_registry()
    tags = archive_tags(path)
    if not tags:
        raise PermanentError("The archive's images have no tags; save them by name:tag.")
    engine = NodeEngine()
    ctx.log(trust_registry_ca(registry.address, registry.ca_pem))
    try:
        ctx.log(f"Loading {path.stat().st_size} bytes: {', '.join(tags)}.")
        engine.load(path, lambda fraction, message: ctx.progress(0.4 * fraction, message))
        pushed = []
        for index, tag in enumerate(tags):
            ctx.raise_if_cancelled()
            name, version = repository_path(tag)
            target = f"{registry.address}/{ctx.params.get('repository') or name}:{version}"
            share = 0.6 / len(tags)
            start = 0.4 + index * share

            def step(
                fraction: float, message: str, start: float = start, share: float = share
            ) -> None:
                ctx.progress(start + share * fraction, message)

            digest = engine.push(tag, target, _auth(registry), step)
            ctx.log(f"Pushed {target} ({digest}).")
            pushed.append({"reference": target, "digest": digest})
            engine.remove(target)
            if not ctx.params.get("keep_local"):
                engine.remove(tag)
    finally:
        engine.close()
    return {"images": pushed}


def _auth(registry: Any) -> dict[str, str]:
    return {
        "username": registry.username or "",
        "password": registry.password or "",
        "serveraddress": registry.address,
    }


def mirror_image(ctx: OperationContext) -> dict[str, Any]:
    """Copy an image from another registry, or from the node's engine, into Spectr's registry."""
    destination = service.require_spectr_registry()
    params = ctx.params
    name, tag = repository_path(params["target"] or params["source"])
    if params.get("source_registry_id") is None:
        engine = NodeEngine()
        ctx.log(trust_registry_ca(destination.address, destination.ca_pem))
        try:
            target = f"{destination.address}/{name}:{tag}"
            digest = engine.push(params["source"], target, _auth(destination), ctx.progress)
            engine.remove(target)
        finally:
            engine.close()
        ctx.log(f"Pushed {params['source']} from the node's engine as {target} ({digest}).")
        return {"reference": target, "digest": digest}
    return _copy_between_registries(ctx, destination, name, tag)


def _copy_between_registries(
    ctx: OperationContext, destination: Any, name: str, tag: str
) -> dict[str, Any]:
    source = service.get_registry(int(ctx.params["source_registry_id"]))
    source_name, reference = repository_path(ctx.params["source"])

    def progress(done: int, total: int, message: str) -> None:
        ctx.progress(done / total if total else 0.0, message)

    with service.client_for(source, 120) as src, service.client_for(destination, 120) as dst:
        try:
            result = ImageCopier(src, dst, progress).copy(source_name, reference, name, tag)
        except (RegistryAuthFailed, RegistryTlsFailed, RegistryNotFound) as exc:
            raise PermanentError(exc.message) from exc
    target = f"{destination.address}/{name}:{tag}"
    ctx.log(
        f"Copied {source.address}/{source_name}:{reference} to {target}: "
        f"{result.blobs_copied} blob(s) copied, {result.blobs_skipped} already there."
    )
    return {"reference": target, "digest": result.digest, "bytes_copied": result.bytes_copied}
