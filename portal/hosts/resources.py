"""Docker resources of one host, whoever made them: containers, images, volumes, networks.

Every host is reached through its ContainerEngine (the Spectr node through the local socket,
others through their agent). Lists join the engine's objects with its containers, so an image,
a volume or a network says which containers use it. Every change is audited, refused ones too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from portal.core.audit import record_audit
from portal.core.errors import (
    Conflict,
    NotFound,
    SpectrError,
    UpstreamUnavailable,
    ValidationFailed,
)
from portal.engines import ContainerEngine, ContainerInfo, EngineError, PruneResult
from portal.engines import errors as engine_errors
from portal.extensions import db
from portal.hosts.models import Host
from portal.hosts.relay import open_engine

MANAGED_LABEL = "spectr.managed-by"
CONTAINER_STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")
CONTAINER_ACTIONS = ("start", "stop", "restart", "remove")
# An id given by prefix must be this long: the engine also takes "a" for any id starting with
# "a", and a destructive action must never land on a container nobody named.
MIN_ID_PREFIX = 12


class EngineRefused(SpectrError):
    """The engine refused the input (a malformed reference, for one)."""

    status = 400
    code = "bad_request"


@contextlib.contextmanager
def host_engine(host: Host) -> Iterator[ContainerEngine]:
    """The host's engine for a block; its errors come out as Spectr's (404, 409, 400, 502)."""
    engine = open_engine(host)
    try:
        yield engine
    except engine_errors.NotFound as exc:
        raise NotFound(exc.message) from None
    except engine_errors.Conflict as exc:
        raise Conflict(exc.message) from None
    except engine_errors.BadRequest as exc:
        raise EngineRefused(exc.message) from None
    except EngineError as exc:
        raise UpstreamUnavailable(f"The engine of '{host.name}' failed: {exc.message}") from None
    finally:
        engine.close()


def is_managed(container: ContainerInfo) -> bool:
    """Whether Spectr deployed the container (it carries Spectr's label)."""
    return MANAGED_LABEL in container.labels


def names_by_id(containers: list[ContainerInfo]) -> dict[str, str]:
    """Container names by id, to say who uses an image, a volume or a network."""
    return {container.id: container.name for container in containers}


def list_containers(
    host: Host, state: str | None = None, search: str | None = None, managed: bool | None = None
) -> list[ContainerInfo]:
    """Every container of the host (not only Spectr's) by name, filtered as asked."""
    with host_engine(host) as engine:
        containers = engine.list_containers()
    needle = (search or "").strip().lower()
    return sorted(
        (
            c
            for c in containers
            if (state is None or c.state == state)
            and (not needle or needle in c.name.lower() or needle in (c.image or "").lower())
            and (managed is None or is_managed(c) == managed)
        ),
        key=lambda c: c.name,
    )


def resolve_container(engine: ContainerEngine, reference: str) -> ContainerInfo:
    """The container named exactly, or by its id (or an id prefix of 12 or more characters)."""
    info = engine.inspect_container(reference)
    if reference in (info.name, info.id) or (
        len(reference) >= MIN_ID_PREFIX and info.id.startswith(reference)
    ):
        return info
    raise NotFound(f"No container '{reference}': give its name or id (12 characters or more).")


def act_on_containers(
    host: Host, action: str, references: list[str], force: bool = False
) -> list[dict[str, Any]]:
    """Start, stop, restart or remove containers, one audit record each; a result per container.

    When none succeeds the first refusal is raised, so a single-container call gets its 404 or
    409; otherwise the failures are in the results beside the successes.
    """
    results: list[dict[str, Any]] = []
    first_failure: SpectrError | None = None
    with host_engine(host) as engine:
        for reference in dict.fromkeys(references):
            try:
                info = _act(engine, action, reference, force)
            except (EngineError, SpectrError) as exc:
                error = _as_spectr_error(exc)
                first_failure = first_failure or error
                _audit(host, f"container.{action}", f"container:{reference}", error.message)
                results.append({"id": reference, "name": None, "ok": False, "error": error.message})
                continue
            _audit(host, f"container.{action}", f"container:{info.name}", details={"id": info.id})
            results.append({"id": info.id, "name": info.name, "ok": True, "error": None})
    db.session.commit()
    if first_failure is not None and not any(result["ok"] for result in results):
        raise type(first_failure)(first_failure.message, {"results": results})
    return results


def _act(engine: ContainerEngine, action: str, reference: str, force: bool) -> ContainerInfo:
    info = resolve_container(engine, reference)
    if action == "start":
        engine.start_container(info.id)
    elif action == "stop":
        engine.stop_container(info.id)
    elif action == "restart":
        engine.restart_container(info.id)
    else:
        engine.remove_container(info.id, force=force)
    return info


def _as_spectr_error(exc: Exception) -> SpectrError:
    if isinstance(exc, SpectrError):
        return exc
    mapped = {
        engine_errors.NotFound: NotFound,
        engine_errors.Conflict: Conflict,
        engine_errors.BadRequest: EngineRefused,
    }
    kind = mapped.get(type(exc), UpstreamUnavailable)
    return kind(getattr(exc, "message", str(exc)))


def _audit(
    host: Host,
    action: str,
    target: str,
    error: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    outcome = "success" if error is None else "failed"
    extra = {**(details or {}), **({"error": error} if error else {})}
    # The target column holds 255 characters; a long name given to a refused call is cut.
    record_audit(f"host.{action}", f"host:{host.name}/{target}"[:255], outcome, extra)


@contextlib.contextmanager
def audited(host: Host, action: str, target: str) -> Iterator[dict[str, Any]]:
    """Audit one change: success with what the block put in details, or its refusal."""
    details: dict[str, Any] = {}
    try:
        yield details
    except SpectrError as exc:
        db.session.rollback()
        _audit(host, action, target, exc.message, details)
        db.session.commit()
        raise
    _audit(host, action, target, details=details)
    db.session.commit()


def prune_summary(result: PruneResult) -> dict[str, Any]:
    """What a prune reports to its caller and its audit record."""
    return {"deleted": result.deleted, "space_reclaimed": result.space_reclaimed}


def require_confirmation(host: Host, confirm: str | None) -> None:
    """A prune names the host it empties, so a script aimed at the wrong host stops here."""
    if confirm != host.name:
        raise ValidationFailed(
            f"Give confirm='{host.name}' (the host's name) to prune this host.",
            {"confirm": [f"must be the host's name, '{host.name}'"]},
        )
