"""Putting model revisions on hosts and taking them off: the `model.distribute` and
`model.remove_from_host` operations.

Each host fetches the files itself from Spectr's registry (its agent, or the portal's own
process for the Spectr node), resuming interrupted files and checking every sha256, so the
portal never relays the bytes. Hosts are served a few at a time; their events come back to
this thread through a queue, because only this thread may write the operation's log.
"""

from __future__ import annotations

import queue
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import select

from portal.artifacts.models import FAILED, PRESENT, HostModel, ModelRevision
from portal.core.operations.kinds import OperationContext, PermanentError, TransientError
from portal.core.timeutil import utcnow
from portal.engines import ContainerEngine, EngineError
from portal.engines import errors as engine_errors
from portal.extensions import db
from portal.hosts.models import Host
from portal.hosts.service import engine_for
from portal.registry import service as registry_service

LOG_EVERY_SECONDS = 2.0


def pull_spec(revision: ModelRevision, verify: bool = True) -> dict[str, Any]:
    """What a host needs to fetch a revision from Spectr's registry."""
    registry = registry_service.require_spectr_registry()
    return {
        "digest": revision.manifest_digest,
        "name": revision.repository,
        "files": [
            {"path": f.path, "digest": f.digest, "size": f.size_bytes} for f in revision.files
        ],
        "source": {
            "url": registry.url,
            "repository": revision.repository,
            "username": registry.username or "",
            "password": registry.password or "",
            "ca_pem": registry.ca_pem or "",
        },
        "verify": verify,
    }


@dataclass
class HostTransfer:
    """One host's pull, as the main thread follows it."""

    host: Host
    engine: ContainerEngine
    total: int = 0
    done: int = 0
    last_logged: float = 0.0
    result: dict[str, Any] | None = None
    error: str | None = None
    transient: bool = False
    files: dict[str, str] = field(default_factory=dict)  # path -> status of the finished ones
    file_bytes: dict[str, int] = field(default_factory=dict)  # path -> bytes held so far
    sizes: dict[str, int] = field(default_factory=dict)


def distribute(ctx: OperationContext) -> dict[str, Any]:
    """Put one revision on every host of the operation, a few hosts at a time."""
    revision = _revision(ctx.params["revision_id"])
    hosts = [_host(host_id) for host_id in ctx.params["host_ids"]]
    return put_on_hosts(ctx, revision, hosts, ctx.params.get("verify", True))


def put_on_hosts(
    ctx: OperationContext, revision: ModelRevision, hosts: list[Host], verify: bool
) -> dict[str, Any]:
    """Have each host fetch the revision into its cache; record who holds it; raise on failures."""
    spec = pull_spec(revision, verify)
    sizes = {f.path: f.size_bytes for f in revision.files}
    transfers = [HostTransfer(host, engine_for(host), sizes=sizes) for host in hosts]
    ctx.log(
        f"Putting {revision.repository}:{revision.tag} ({revision.size_bytes} bytes, "
        f"{len(revision.files)} files) on {len(hosts)} host(s)."
    )
    try:
        _run_transfers(ctx, spec, transfers)
    finally:
        for transfer in transfers:
            transfer.engine.close()
    for transfer in transfers:
        _record(revision, transfer)
    db.session.commit()
    return _outcome(revision, transfers)


def _run_transfers(
    ctx: OperationContext, spec: dict[str, Any], transfers: list[HostTransfer]
) -> None:
    events: queue.Queue[tuple[HostTransfer, dict[str, Any]]] = queue.Queue()
    workers = max(
        1, min(int(current_app.config["SPECTR_MODEL_DISTRIBUTION_PARALLEL"]), len(transfers))
    )
    reported = [-1.0]  # the last fraction written: one progress write per percent, not per MiB
    with ThreadPoolExecutor(workers, thread_name_prefix="model-pull") as pool:
        futures = [pool.submit(_pull_on, t, spec, events) for t in transfers]
        while not all(future.done() for future in futures) or not events.empty():
            _drain(ctx, events, transfers, reported)
            if ctx.cancelled:
                for future in futures:
                    future.cancel()  # hosts not started yet are spared; running pulls end first
                ctx.raise_if_cancelled()
        for future in futures:
            _raise_unexpected(future)


def _pull_on(transfer: HostTransfer, spec: dict[str, Any], events: queue.Queue) -> None:
    try:
        transfer.result = transfer.engine.pull_model(spec, lambda e: events.put((transfer, e)))
    except engine_errors.Unavailable as exc:
        transfer.error, transfer.transient = exc.message, True
    except EngineError as exc:
        transfer.error = exc.message


def _raise_unexpected(future: Future) -> None:
    error = future.exception()
    if error is not None:
        raise error


def _drain(
    ctx: OperationContext, events: queue.Queue, transfers: list[HostTransfer], reported: list[float]
) -> None:
    try:
        transfer, event = events.get(timeout=0.25)
    except queue.Empty:
        return
    _follow(ctx, transfer, event)
    total = sum(t.total for t in transfers)
    fraction = sum(t.done for t in transfers) / total if total else 0.0
    if fraction - reported[0] >= 0.01 or event.get("event") in ("done", "error"):
        reported[0] = fraction
        ctx.progress(fraction, f"{transfer.host.name}: {event.get('event')}")


def _follow(ctx: OperationContext, transfer: HostTransfer, event: dict[str, Any]) -> None:
    """Turn one host event into the live log: start, files, progress every few seconds, end."""
    name, kind = transfer.host.name, event.get("event")
    if kind == "start":
        transfer.total = int(event.get("bytes_total") or 0)
        transfer.done = int(event.get("bytes_present") or 0)
        ctx.log(f"{name}: {transfer.total} bytes to hold, {transfer.done} already there.")
    elif kind == "progress":
        transfer.file_bytes[str(event.get("path"))] = int(event.get("bytes_done") or 0)
        transfer.done = max(transfer.done, sum(transfer.file_bytes.values()))
        now = time.monotonic()
        if now - transfer.last_logged >= LOG_EVERY_SECONDS:
            transfer.last_logged = now
            ctx.log(
                f"{name}: {event.get('path')} {event.get('bytes_done')}/{event.get('bytes_total')} bytes"
            )
    elif kind == "file":
        path = str(event.get("path"))
        transfer.files[path] = str(event.get("status"))
        transfer.file_bytes[path] = transfer.sizes.get(path, 0)
        transfer.done = max(transfer.done, sum(transfer.file_bytes.values()))
        ctx.log(
            f"{name}: {event.get('path')} {event.get('status')} ({event.get('bytes_fetched', 0)} bytes fetched)"
        )
    elif kind == "done":
        transfer.done = transfer.total
        ctx.log(
            f"{name}: done in {event.get('seconds', 0):.1f} s, {event.get('bytes_fetched', 0)} bytes fetched, at {event.get('path')}."
        )
    elif kind == "error":
        ctx.log(f"{name}: {event.get('message')}", "error")


def _record(revision: ModelRevision, transfer: HostTransfer) -> None:
    row = db.session.scalar(
        select(HostModel).filter_by(host_id=transfer.host.id, revision_id=revision.id)
    ) or HostModel(host_id=transfer.host.id, revision_id=revision.id)
    if transfer.result is not None:
        row.state, row.error, row.pulled_at = PRESENT, None, utcnow()
        row.path, row.size_bytes = transfer.result.get("path"), revision.size_bytes
    elif row.state != PRESENT or row.id is None:
        row.state, row.error = FAILED, transfer.error
    db.session.add(row)


def _outcome(revision: ModelRevision, transfers: list[HostTransfer]) -> dict[str, Any]:
    failed = [t for t in transfers if t.result is None]
    hosts = {
        t.host.name: {"path": t.result.get("path"), "bytes_fetched": t.result.get("bytes_fetched")}
        for t in transfers
        if t.result is not None
    }
    if failed:
        reasons = "; ".join(f"{t.host.name}: {t.error}" for t in failed)
        if all(t.transient for t in failed):
            raise TransientError(f"{len(failed)} host(s) could not take the model: {reasons}")
        raise PermanentError(f"{len(failed)} host(s) could not take the model: {reasons}")
    return {"digest": revision.manifest_digest, "hosts": hosts}


def ensure_on_host(ctx: OperationContext, digest: str, host: Host, mounted: str) -> None:
    """Before a model server starts: its files are on the host, where the app mounts them.

    A host that holds the revision has its files' sizes checked (a full sha256 pass over a
    100 GB model at every restart would be slow); one that does not fetches them first.
    """
    revision = db.session.scalar(select(ModelRevision).filter_by(manifest_digest=digest))
    if revision is None:
        raise PermanentError(f"No imported model revision has digest {digest}.")
    held = host.id in set(
        db.session.scalars(
            select(HostModel.host_id).filter_by(revision_id=revision.id, state=PRESENT)
        )
    )
    ctx.log(
        f"{host.name} holds {revision.repository}:{revision.tag}: checking its files."
        if held
        else f"{host.name} does not hold {revision.repository}:{revision.tag} yet: fetching it."
    )
    outcome = put_on_hosts(ctx, revision, [host], verify=not held)
    path = outcome["hosts"][host.name]["path"]
    if path != mounted:
        raise PermanentError(
            f"{host.name} keeps the model in {path}, but the application mounts {mounted}: "
            "deploy the model again so that its new revision mounts the right folder."
        )


def remove_from_host(ctx: OperationContext) -> dict[str, Any]:
    """Delete a revision from one host's cache (the service refused it while an app uses it)."""
    revision = _revision(ctx.params["revision_id"])
    host = _host(ctx.params["host_id"])
    try:
        with engine_for(host) as engine:
            freed = engine.remove_model(revision.manifest_digest)
    except engine_errors.NotFound:
        freed = 0
        ctx.log(f"{host.name} did not hold {revision.manifest_digest}.")
    except engine_errors.Unavailable as exc:
        raise TransientError(exc.message) from None
    except EngineError as exc:
        raise PermanentError(exc.message) from None
    row = db.session.scalar(select(HostModel).filter_by(host_id=host.id, revision_id=revision.id))
    if row is not None:
        db.session.delete(row)
    db.session.commit()
    ctx.log(f"Removed {revision.repository}:{revision.tag} from {host.name}: {freed} bytes freed.")
    return {"host": host.name, "freed_bytes": freed}


def _revision(revision_id: int) -> ModelRevision:
    revision = db.session.get(ModelRevision, revision_id)
    if revision is None:
        raise PermanentError(f"Model revision {revision_id} no longer exists.")
    return revision


def _host(host_id: int) -> Host:
    host = db.session.get(Host, host_id)
    if host is None:
        raise PermanentError(f"Host {host_id} no longer exists.")
    return host
