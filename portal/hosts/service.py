"""Host records: add, edit, list, delete, status transitions, and the engines that reach them."""

from __future__ import annotations

import os
import sys
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, false, func, insert, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer, selectinload

from portal.automation.inventory import InventoryHost
from portal.core import plugins
from portal.core.audit import record_audit
from portal.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from portal.core.timeutil import utcnow
from portal.engines import AgentEngine, ContainerEngine, LocalDockerEngine
from portal.extensions import db
from portal.hosts.models import (
    LOCAL_HOST_NAME,
    NEW,
    READY,
    Host,
    HostGpu,
    HostStatusChange,
)
from portal.projects import sharing
from portal.projects.access import caller_scope, checked, target_project
from portal.settings.service import get_setting

EDITABLE_FIELDS = (
    "name", "address", "ssh_port", "ssh_user", "become_method", "labels", "agent_port",
    "ssh_private_key", "ssh_password",
)  # fmt: skip


MAX_HOST_ID = 2**31 - 1  # the column is a 32-bit integer on Postgres
_SECRETS_DEFERRED = tuple(
    defer(column)
    for column in (
        Host.ssh_private_key, Host.ssh_password, Host.agent_token, Host.agent_private_key,
    )
)  # fmt: skip


def get_host(host_id: int) -> Host:
    host = db.session.get(Host, host_id) if 0 < host_id <= MAX_HOST_ID else None
    if host is None:
        raise NotFound(f"No host with id {host_id}.")
    return host


def visible_host(host_id: int, needed: str = "viewer", shared: bool = False) -> Host:
    """The host, if the caller has `needed` in its project: 404 like a missing one when the
    caller cannot see that project, 403 when its role there is lower. A caller who sees the
    host only through a share reads it where `shared` allows (403 for anything else)."""
    host = get_host(host_id)
    if caller_scope().role_in(host.project_id) is None:
        share = sharing.callers_share(host)
        if share is not None:
            if shared and needed == "viewer":
                return checked(_ShareView(host, share.project_id), "viewer", "").host
            raise Forbidden(
                f"Host '{host.name}' is shared with your project '{share.project.name}': you "
                "may deploy your applications there; its own project manages the host."
            )
    return checked(host, needed, f"No host with id {host_id}.")


class _ShareView:
    """A host seen through a share, for `checked`: its project is the sharing one."""

    def __init__(self, host: Host, project_id: int) -> None:
        self.host, self.project_id = host, project_id


def deployable_host(
    host_id: int, project: str | None = None, prefer: int | None = None
) -> tuple[Host, int]:
    """The host a new application goes to, and the project it will belong to: the named
    project (the host's own or one it is shared with), else `prefer`, the host's or a sharing
    one where the caller is an operator. 404 when the caller sees the host through none."""
    host = get_host(host_id)
    allowed = [host.project_id, *(share.project_id for share in sharing.shares_of(host.id))]
    scope = caller_scope()
    if not any(scope.role_in(project_id) for project_id in allowed):
        raise NotFound(f"No host with id {host_id}.")
    if project is not None:
        found = target_project(project, "operator")
        sharing.require_deployable_in(host, found)
        return host, found.id
    project_id = sharing.project_for_new_app(host, prefer)
    checked(_ShareView(host, project_id), "operator", f"No host with id {host_id}.")
    return host, project_id


def _of_projects(project_ids: list[int]) -> ColumnElement[bool]:
    return or_(Host.project_id.in_(project_ids), Host.id.in_(sharing.shared_host_ids(project_ids)))


def list_hosts(status: str | None = None) -> list[Host]:
    return list(db.session.scalars(hosts_query(status=status)))


def hosts_query(
    *,
    status: str | None = None,
    label: str | None = None,
    gpu_model: str | None = None,
    project_ids: list[int] | None = None,
) -> Any:
    """A select() of hosts by name, filtered by status, a label (KEY or KEY=VALUE), GPU model.

    GPUs come with the hosts in one more query per page (lists show them), not one per host.
    Credentials are left out until used: no list shows them, and decrypting them was a fifth
    of a page's time.
    """
    query = select(Host).options(selectinload(Host.gpus), *_SECRETS_DEFERRED).order_by(Host.name)
    if status:
        query = query.where(Host.status == status)
    if project_ids is not None:  # the projects' own hosts and those shared with them
        query = query.where(_of_projects(project_ids))
    if label:
        key, has_value, value = label.partition("=")
        text = Host.labels[key.strip()].as_string()
        query = query.where(text == value.strip() if has_value else text.is_not(None))
    if gpu_model:
        matching = select(HostGpu.host_id).where(
            func.lower(HostGpu.model).contains(gpu_model.lower(), autoescape=True)
        )
        query = query.where(Host.id.in_(matching))
    return query


def host_choices(
    prefix: str = "", limit: int | None = None, project_ids: list[int] | None = None
) -> list[Any]:
    """Hosts as light rows (id, name, address, status, is_local) for a form, by name.

    With `prefix`, only the hosts whose name starts with it; `limit` caps how many.
    """
    query = select(Host.id, Host.name, Host.address, Host.status, Host.is_local)
    if project_ids is not None:  # the projects' own hosts and those shared with them
        query = query.where(_of_projects(project_ids))
    if prefix:
        query = query.where(Host.name.startswith(prefix, autoescape=True))
    return list(db.session.execute(query.order_by(Host.name).limit(limit)).all())


def host_id_named(name: str) -> int:
    """The id of the host called `name`; a 422 naming the field when there is none."""
    host_id = db.session.scalar(select(Host.id).where(Host.name == name))
    if host_id is None:
        raise ValidationFailed(f"No host is named '{name}'.", {"host_name": ["no such host"]})
    return host_id


def create_host(values: dict[str, Any]) -> Host:
    """Add a host (status `new`); exactly one of a private key or a password is required."""
    values = _with_defaults(values)
    values.pop("project", None)  # resolved to project_id by the API; pages add to `default`
    _require_one_credential(values.get("ssh_private_key"), values.get("ssh_password"))
    host = Host(
        status=NEW,
        auth_method="key" if values.get("ssh_private_key") else "password",
        labels=values.pop("labels", None) or {},
        facts={},
        **values,
    )
    db.session.add(host)
    _commit_unique_name(host, "host.create")
    return host


def create_hosts(rows: list[dict[str, Any]]) -> list[Host]:
    """Add many hosts in one transaction: all of them, or none when one is wrong."""
    names = [row["name"] for row in rows]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValidationFailed(f"Duplicate host names: {', '.join(duplicates)}.")
    hosts = []
    for row in rows:
        row = _with_defaults(dict(row))
        _require_one_credential(row.get("ssh_private_key"), row.get("ssh_password"))
        auth = "key" if row.get("ssh_private_key") else "password"
        labels = row.pop("labels", None) or {}
        hosts.append(Host(status=NEW, auth_method=auth, labels=labels, facts={}, **row))
    db.session.add_all(hosts)
    _commit_unique_name(None, "host.import", {"count": len(hosts), "names": names[:50]})
    return hosts


def update_host(host: Host, changes: dict[str, Any]) -> Host:
    """Change a host's settings; a new address or port forgets the recorded SSH host key."""
    if host.is_local:
        raise Conflict("The Spectr node's own host cannot be edited.")
    if {"address", "ssh_port"} & changes.keys() and (
        changes.get("address", host.address) != host.address
        or changes.get("ssh_port", host.ssh_port) != host.ssh_port
    ):
        forget_host_key(host, commit=False)
    if changes.get("ssh_private_key"):
        changes = {**changes, "ssh_private_key": normalize_private_key(changes["ssh_private_key"])}
    for name in EDITABLE_FIELDS:
        if name in changes:
            setattr(host, name, changes[name])
    if changes.get("ssh_private_key"):
        host.auth_method, host.ssh_password = "key", None
    elif changes.get("ssh_password"):
        host.auth_method, host.ssh_private_key = "password", None
    _require_one_credential(host.ssh_private_key, host.ssh_password)
    if host.agent_url:  # the portal reaches the agent at the new address or port
        host.agent_url = agent_url_for(host)
    _commit_unique_name(host, "host.update", {"fields": sorted(changes)})
    return host


def delete_host(host: Host) -> None:
    """Forget a host and everything recorded about it; refused while applications run on it."""
    if host.is_local:
        raise Conflict("The Spectr node's own host cannot be deleted.")
    from portal.apps.service import application_names_on

    names = application_names_on(host.id)
    if names:
        raise Conflict(
            f"Host '{host.name}' still has applications: {', '.join(names)}. "
            "Remove them first (that stops their containers), then delete the host.",
            {"applications": names},
        )
    record_audit("host.delete", f"host:{host.id}", details={"name": host.name})
    db.session.delete(host)
    db.session.commit()


def assign_operation(host_ids: list[int], operation_id: str) -> None:
    """Point hosts at the operation now working on them (so a second one is refused)."""
    for host_id in host_ids:
        host = db.session.get(Host, host_id)
        if host is not None:  # a fast worker may already have deleted it
            host.last_operation_id = operation_id
    db.session.commit()


def require_idle(host: Host) -> None:
    """Refuse to start a second operation while one is still bootstrapping the host."""
    from portal.core.operations.models import ACTIVE_STATES, Operation

    if host.last_operation_id:
        operation = db.session.get(Operation, host.last_operation_id)
        if operation is not None and operation.state in ACTIVE_STATES:
            raise Conflict(
                f"Host '{host.name}' is busy with operation {operation.id} ({operation.kind}).",
                {"operation_id": operation.id},
            )


def forget_host_key(host: Host, commit: bool = True) -> None:
    """Drop the recorded SSH host key, so the next contact records the host's key anew."""
    if host.host_key:
        record_audit(
            "host.forget_host_key", f"host:{host.id}", details={"was": host.host_key_fingerprint}
        )
    host.host_key, host.host_key_fingerprint = None, None
    if commit:
        db.session.commit()


def status_history(host_id: int, limit: int = 50) -> list[HostStatusChange]:
    """A host's latest status changes, newest first (a flapping host has thousands)."""
    query = (
        select(HostStatusChange)
        .where(HostStatusChange.host_id == host_id)
        .order_by(HostStatusChange.at.desc(), HostStatusChange.id.desc())
        .limit(limit)
    )
    return list(db.session.scalars(query))


def set_status(host: Host, status: str, reason: str | None = None) -> bool:
    """Move a host to `status`, recording the transition; return whether it changed."""
    if host.status == status:
        if reason and host.status_reason != reason and status != READY:
            host.status_reason = reason
        return False
    db.session.add(
        HostStatusChange(host=host, from_status=host.status, to_status=status, reason=reason)
    )
    host.status, host.status_reason, host.status_changed_at = status, reason, utcnow()
    return True


def set_statuses(changes: list[tuple[int, str, str, str | None]]) -> int:
    """Apply many (host id, current status, new status, reason) at once; return the moves.

    What set_status does for one host, for a sweep's worth: the moves recorded in one INSERT,
    the hosts updated by one UPDATE per (status, reason). When ten thousand agents stop
    answering together, loading each host to change it took seconds (and decrypted its keys).
    """
    now = utcnow()
    moves = [(h, old, new, reason) for h, old, new, reason in changes if old != new]
    if moves:
        db.session.execute(
            insert(HostStatusChange.__table__),
            [{"host_id": h, "at": now, "from_status": old, "to_status": new, "reason": reason}
             for h, old, new, reason in moves],
        )  # fmt: skip
    groups: dict[tuple[str, str, str | None], list[int]] = {}
    for host_id, old, new, reason in changes:
        groups.setdefault((old, new, reason), []).append(host_id)
    for (old, new, reason), host_ids in groups.items():
        values: dict[str, Any] = {"status_reason": reason}
        if old != new:
            values.update(status=new, status_changed_at=now)
        for start in range(0, len(host_ids), 5000):
            chunk = host_ids[start : start + 5000]
            db.session.execute(  # a host that meanwhile moved on (a bootstrap began) is left be
                update(Host).where(Host.id.in_(chunk), Host.status == old).values(values),
                execution_options={"synchronize_session": False},
            )
    return len(moves)


def ensure_local_host() -> Host:
    """Return the Spectr node's own host row, creating it (ready, local Docker) if missing."""
    host = db.session.scalar(select(Host).filter_by(is_local=True))
    if host is None:
        host = Host(
            name=LOCAL_HOST_NAME, address="127.0.0.1", is_local=True, status=READY, ssh_user="root"
        )
        db.session.add(host)
        try:
            db.session.commit()
        except IntegrityError:  # the health sweep and a page made it at the same moment
            db.session.rollback()
            host = db.session.scalars(select(Host).filter_by(is_local=True)).one()
    return host


def agent_url_for(host: Host) -> str:
    """The HTTPS base URL where the portal reaches a host's agent."""
    address = f"[{host.address}]" if ":" in host.address else host.address
    return f"https://{address}:{host.agent_port}"


def engine_for(host: Host) -> ContainerEngine:
    """The ContainerEngine that reaches `host`, as configuration chooses (SPECTR_HOST_ENGINES):
    by default the local socket for the Spectr node and the host's agent for the others."""
    factory = plugins.load("engine", engine_name_for(host), BUILTIN_ENGINES)
    return factory(host)  # type: ignore[no-any-return]


def configured_engines() -> dict[str, str]:
    """SPECTR_HOST_ENGINES as engine names by host name (`*`: every host but the Spectr node)."""
    return dict(
        pair.split("=", 1)
        for pair in str(current_app.config.get("SPECTR_HOST_ENGINES") or "")
        .replace(" ", "")
        .split(",")
        if "=" in pair
    )


def engine_name_for(host: Host) -> str:
    """The engine configured for `host` (by its name, else `*` for SSH hosts), or the default."""
    chosen = configured_engines()
    if host.name in chosen:
        return chosen[host.name]
    if not host.is_local and "*" in chosen:
        return chosen["*"]
    return "docker" if host.is_local else "agent"


def on_the_agent_engine() -> ColumnElement[bool]:
    """Which remote hosts engine_name_for gives the built-in agent engine, as a WHERE clause."""
    chosen = configured_engines()
    default = chosen.pop("*", "agent")
    if default == "agent":
        others = [name for name, engine in chosen.items() if engine != "agent"]
        return Host.name.not_in(others) if others else true()
    agents = [name for name, engine in chosen.items() if engine == "agent"]
    return Host.name.in_(agents) if agents else false()


def _local_engine(host: Host) -> ContainerEngine:
    return LocalDockerEngine(models_dir=current_app.config["SPECTR_MODELS_DIR"])


def _host_agent_engine(host: Host) -> ContainerEngine:
    if not host.agent_url or not host.agent_token:
        raise NotFound(f"Host '{host.name}' has no agent yet; bootstrap it first.")
    return agent_engine(host.agent_url, host.agent_token)


# Spectr's own engines; others are found under the spectr.engines entry point group.
BUILTIN_ENGINES = {"docker": _local_engine, "agent": _host_agent_engine}


def agent_engine(agent_url: str, token: str, **options: Any) -> AgentEngine:
    """An AgentEngine trusting only the Spectr CA and presenting the portal's client certificate."""
    from portal.core.pki import ca_certificate_path, portal_client_certificate

    client = str(portal_client_certificate())  # certificate and key in one file
    return AgentEngine(
        agent_url, token, str(ca_certificate_path()), client_cert=(client, client), **options
    )


def normalize_private_key(text: str) -> str:
    """Browsers send textareas with CRLF; OpenSSH reads keys only with LF line ends."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip() + "\n"


def _with_defaults(values: dict[str, Any]) -> dict[str, Any]:
    values = {key: value for key, value in values.items() if value is not None}
    if values.get("ssh_private_key"):
        values["ssh_private_key"] = normalize_private_key(values["ssh_private_key"])
    values.setdefault("ssh_user", get_setting("ssh_default_user"))
    values.setdefault("ssh_port", get_setting("ssh_default_port"))
    return values


def _require_one_credential(private_key: str | None, password: str | None) -> None:
    if bool(private_key) == bool(password):
        raise ValidationFailed(
            "Give either an SSH private key or a password (exactly one).",
            {"ssh_private_key": ["give a private key or a password, not both or neither"]},
        )


def _commit_unique_name(host: Host | None, action: str, details: dict | None = None) -> None:
    try:
        db.session.flush()
        target = f"host:{host.id}" if host is not None else "hosts"
        record_audit(action, target, details=details)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(
            "A host with this name already exists.", {"name": ["already used"]}
        ) from None


def import_hosts(
    content: str, file_format: str | None, defaults: dict[str, Any], project_id: int | None = None
) -> list[Host]:
    """Bulk add from an inventory or CSV; `defaults` (credential, user, labels) fill the gaps."""
    from portal.hosts.inventory_import import InventoryError, guess_format, parse_hosts_file
    from portal.hosts.schemas import HostWriteSchema

    try:
        rows = parse_hosts_file(content, file_format or guess_format("", content))
    except InventoryError as exc:
        raise ValidationFailed(
            f"Cannot read the inventory: {exc}", {"content": [str(exc)]}
        ) from None
    merged, errors = [], {}
    for row in rows:
        values = _merge_import_row(row, defaults)
        problems = HostWriteSchema().validate(values)
        if problems:
            errors[row["name"]] = problems
        merged.append(values)
    if errors:
        names = ", ".join(sorted(errors)[:10])
        raise ValidationFailed(f"Some hosts in the file are not valid: {names}.", errors)
    return create_hosts([{**values, "project_id": project_id} for values in merged])


def _merge_import_row(row: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    values = {key: defaults[key] for key in ("ssh_user", "become_method") if defaults.get(key)}
    values.update(row)
    values["labels"] = {**(defaults.get("labels") or {}), **row.get("labels", {})}
    if not row.get("ssh_password"):
        for key in ("ssh_private_key", "ssh_password"):
            if defaults.get(key):
                values[key] = defaults[key]
    return values


def inventory_host(host: Host, **variables: Any) -> InventoryHost:
    """How Ansible reaches `host`: the local connection for the Spectr node, SSH otherwise."""
    if host.is_local:
        is_root = os.geteuid() == 0
        local = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "ansible_become": not is_root,  # root already: plays' `become` has nothing to do
        }
        return InventoryHost(name=host.name, address="127.0.0.1", vars={**local, **variables})
    return InventoryHost(
        name=host.name,
        address=host.address,
        port=host.ssh_port,
        user=host.ssh_user,
        private_key=host.ssh_private_key,
        password=host.ssh_password,
        become_method=host.become_method,
        known_host_key=host.host_key,
        vars=variables,
    )
