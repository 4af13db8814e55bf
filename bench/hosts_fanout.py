"""Bootstrap fan-out: 1 host, then N hosts (default 8) in one operation, on real SSH test hosts.

    .venv/bin/python bench/hosts_fanout.py [--hosts 8] [--forks 8]

Docker-in-Docker test hosts (tests/images) are bootstrapped by the real `bootstrap_hosts`
operation: ansible-runner with forks, every Ansible event a line in the operation log, the
agent checked over TLS. The 1-host run is the baseline measured in the same run; the target is
N hosts in at most 2x its time. Also reports Ansible events per second ingested into the log.
Bounded: N <= 12; every test host is removed at the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_RATIO = 2.0


def start_hosts(count: int) -> list[Any]:
    from tests.support.testhosts import start_test_host

    with ThreadPoolExecutor(4) as pool:
        return list(
            pool.map(
                lambda i: start_test_host(f"fanout-{i}", dind=True, extra_ports=(7443,)),
                range(count),
            )
        )


def add_hosts(hosts: list[Any], prefix: str) -> list[int]:
    from portal.hosts.service import create_host

    ids = []
    for index, host in enumerate(hosts):
        created = create_host({
            "name": f"{prefix}-{index}", "address": host.address, "ssh_port": host.port,
            "ssh_user": "ops", "ssh_private_key": host.private_key_path.read_text(),
            "agent_port": host.published_ports[7443],
        })  # fmt: skip
        ids.append(created.id)
    return ids


def bootstrap(host_ids: list[int], forks: int) -> dict[str, Any]:
    from portal.core.operations import service
    from portal.extensions import db

    started = time.perf_counter()
    operation, _ = service.create_operation(
        "bootstrap_hosts", {"host_ids": host_ids, "forks": forks}, max_attempts=1
    )  # the test queue runs it inline
    seconds = time.perf_counter() - started
    db.session.expire_all()
    operation = service.get_operation(operation.id)
    if operation.state != "succeeded":
        raise SystemExit(f"bootstrap of {len(host_ids)} host(s) failed: {operation.error}")
    lines = len(service.read_log(operation.id, limit=1_000_000))
    result = operation.result or {}
    events = result.get("ansible_events", 0)
    playbook_s = result.get("playbook_seconds") or seconds
    print(
        f"{len(host_ids)} host(s), forks {forks}: {seconds:6.1f} s total, playbook {playbook_s:6.1f} s, "
        f"{events} Ansible events ({events / playbook_s:5.1f}/s), {lines} log lines "
        f"({lines / playbook_s:5.1f}/s)"
    )
    return {"seconds": seconds, "events_per_s": events / playbook_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=8, choices=range(2, 13), metavar="2..12")
    parser.add_argument("--forks", type=int, default=8)
    args = parser.parse_args()

    from flask_migrate import upgrade

    from portal.app import create_app
    from portal.hosts.agent_artifact import agent_artifact_path

    instance = Path(tempfile.mkdtemp(prefix="spectr-bench-fanout-"))
    app = create_app({"SPECTR_INSTANCE_PATH": str(instance), "SPECTR_QUEUE_IMMEDIATE": True,
                      "SPECTR_DATABASE_URL": f"sqlite:///{instance / 'spectr.db'}",
                      "SPECTR_LOG_LEVEL": "WARNING"})  # fmt: skip
    hosts: list[Any] = []
    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory)
        agent_artifact_path()  # built once, before anything is timed
        try:
            print(f"starting {1 + args.hosts} Docker-in-Docker test hosts ...", flush=True)
            hosts = start_hosts(1 + args.hosts)
            single = bootstrap(add_hosts(hosts[:1], "single"), forks=1)
            many = bootstrap(add_hosts(hosts[1:], "many"), forks=args.forks)
        finally:
            for host in hosts:
                host.remove()
    ratio = many["seconds"] / single["seconds"]
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(
        f"\n{args.hosts} hosts / 1 host = {ratio:.2f}x (target <= {TARGET_RATIO:.0f}x: {verdict})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
