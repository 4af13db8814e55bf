"""A fleet of rows for tests of paths that grow with the fleet: hosts, GPUs, containers,
applications, operations with log lines. Inserted in bulk; nothing is reachable."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import insert, select

from portal.apps.models import Application
from portal.core.operations.models import Operation, OperationLogLine
from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.hosts.models import Host, HostContainer, HostGpu, HostStatusChange

GPU_MODELS = ("NVIDIA H200", "NVIDIA A100-SXM4-80GB")


def seed_fleet(hosts: int, containers: int = 3, operations_per_host: int = 1) -> list[int]:
    """Insert `hosts` ready hosts with 2 GPUs, containers, an application and operations each.

    Returns the new hosts' ids. Names continue after the hosts already there.
    """
    now = utcnow()
    first = db.session.query(Host).count()
    rows = [
        {"name": f"node-{first + i:05d}", "address": f"10.9.{(first + i) // 250}.{(first + i) % 250}",
         "ssh_port": 22, "ssh_user": "root", "auth_method": "password", "ssh_password": "pw",
         "become_method": "sudo", "labels": {"rack": f"r{i % 4}"}, "is_local": False,
         "status": ("ready", "degraded")[i % 2], "status_changed_at": now, "facts": {},
         "agent_url": f"https://10.9.{(first + i) // 250}.{(first + i) % 250}:7443",
         "agent_port": 7443, "agent_token": "token", "missed_checks": 0, "bootstrapped_at": now,
         "created_at": now, "updated_at": now}
        for i in range(hosts)
    ]  # fmt: skip
    db.session.execute(insert(Host), rows)
    ids = list(db.session.scalars(select(Host.id).where(Host.name >= f"node-{first:05d}")))
    db.session.execute(
        insert(HostGpu),
        [{"host_id": h, "index": g, "model": GPU_MODELS[h % 2], "memory_total_mib": 81920,
          "memory_used_mib": 1024} for h in ids for g in range(2)],
    )  # fmt: skip
    db.session.execute(
        insert(HostContainer),
        [{"host_id": h, "container_id": f"{h}-{c}", "name": f"app-{c}", "image": "img:1",
          "state": "running", "restart_count": 0, "labels": {}, "updated_at": now}
         for h in ids for c in range(containers)],
    )  # fmt: skip
    db.session.execute(
        insert(HostStatusChange),
        [{"host_id": h, "at": now, "from_status": "new", "to_status": "ready"} for h in ids],
    )
    operation_ids = [str(uuid.uuid4()) for _ in range(len(ids) * operations_per_host)]
    db.session.execute(
        insert(Application),
        [{"name": "app-0", "host_id": h, "kind": "container", "latest_revision": 1,
          "status": "running", "adopted": False, "created_at": now, "updated_at": now,
          "last_operation_id": operation_ids[n * operations_per_host] if operation_ids else None}
         for n, h in enumerate(ids)],
    )  # fmt: skip
    if operation_ids:
        db.session.execute(
            insert(Operation),
            [{"id": op_id, "kind": "noop", "target": f"host:{ids[n % len(ids)]}",
              "state": ("succeeded", "failed")[n % 2], "attempts": 1, "max_attempts": 3,
              "progress": 1.0, "params": {}, "cancel_requested": False, "callback_attempts": 0,
              "created_at": now - timedelta(seconds=n), "started_at": now, "finished_at": now}
             for n, op_id in enumerate(operation_ids)],
        )  # fmt: skip
        db.session.execute(
            insert(OperationLogLine),
            [{"operation_id": op_id, "at": now, "level": "info", "message": f"line {k}"}
             for op_id in operation_ids for k in range(3)],
        )  # fmt: skip
    db.session.commit()
    return ids
