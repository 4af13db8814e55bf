"""Two `spectr worker` processes share the health sweep: each host once a round, none skipped,
and a worker killed mid-run loses its hosts to the other within one interval.

Real processes on Postgres and Redis; the agents are light HTTPS simulators in this process
(tests/support/simulated_agents.py) that record every health check they answer.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select

from portal.app import create_app
from portal.core.pki import issue_server_certificate
from portal.core.timeutil import utcnow
from portal.extensions import db
from portal.hosts.models import Host, SweepWorker
from portal.settings.service import update_settings
from proxy.tests.redis_server import RedisServer
from tests.portal.conftest import _test_config
from tests.support.simulated_agents import SimulatedAgents
from tests.support.workers import stop_workers

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]
SPECTR = str(Path(sys.executable).with_name("spectr"))
INTERVAL = 5  # the smallest interval the setting allows
HOSTS = 24


def wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def sweep_workers() -> list[SweepWorker]:
    db.session.rollback()
    return list(db.session.scalars(select(SweepWorker).order_by(SweepWorker.worker_id)))


def next_round_start() -> float:
    return (math.floor(time.time() / INTERVAL) + 1) * INTERVAL


@pytest.fixture
def fleet(tmp_path: Path, postgres_migrated: str) -> Iterator[tuple[SimulatedAgents, list]]:
    """Hosts whose agents are simulators, the interval at 5 s, and a starter of workers."""
    redis = RedisServer().start()
    config = _test_config(
        tmp_path, postgres_migrated, SPECTR_QUEUE_IMMEDIATE=False, SPECTR_REDIS_URL=redis.url,
        SPECTR_QUEUE_NAME=f"spectr-test-{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    app = create_app(config)
    env = {**os.environ, **{k: str(v) for k, v in config.items() if k.startswith("SPECTR_")}}
    env.pop("SPECTR_QUEUE_IMMEDIATE")
    workers: list[subprocess.Popen] = []
    with app.app_context():
        db.session.execute(delete(Host))  # the session's database is shared with other tests
        db.session.execute(delete(SweepWorker))
        db.session.commit()
        agents = SimulatedAgents(
            HOSTS, issue_server_certificate("agents", [f"127.82.0.{n + 1}" for n in range(HOSTS)]),
            tmp_path,
        ).start()  # fmt: skip
        now = utcnow()
        db.session.execute(
            insert(Host),
            [{"name": f"sim-{n:02d}", "address": address, "ssh_password": "pw",
              "auth_method": "password", "status": "ready", "labels": {}, "facts": {},
              "bootstrapped_at": now, "agent_port": agents.port,
              "agent_url": f"https://{address}:{agents.port}",
              "agent_token": agents.token(address)} for n, address in enumerate(agents.addresses)],
        )  # fmt: skip
        update_settings({"health_check_interval_seconds": INTERVAL}, "test")
        db.session.commit()

        def start_worker() -> subprocess.Popen:
            with open(tmp_path / f"worker-{len(workers)}.log", "w") as log:  # the child keeps it
                proc = subprocess.Popen(
                    [SPECTR, "worker", "--threads", "1"], env=env, stdout=log, stderr=log
                )
            workers.append(proc)
            return proc

        try:
            yield agents, [start_worker]
        finally:
            stop_workers(workers)
            agents.stop()
            db.session.remove()
            db.engine.dispose()
            redis.stop()


def test_two_workers_share_the_sweep_and_one_takes_over_when_the_other_dies(fleet) -> None:
    agents, (start_worker,) = fleet
    first, second = start_worker(), start_worker()
    wait_for(
        lambda: len([w for w in sweep_workers() if w.last_round is not None]) == 2,
        90,
        "both workers to finish a round",
    )
    # Steady state: three whole rounds from the next boundary on.
    start = next_round_start()
    time.sleep(start + 3 * INTERVAL + 1 - time.time())
    counts = agents.probes_between(start, start + 3 * INTERVAL)
    rows = sweep_workers()

    assert set(counts.values()) == {3}, counts  # every host once a round: none twice, none skipped
    assert sorted(w.last_shard for w in rows) == ["0/2", "1/2"]
    # The Spectr node (this machine's engine, no agent) is swept too, by the shard holding its id.
    assert sorted(w.last_sweep_hosts for w in rows) == [HOSTS // 2, HOSTS // 2 + 1]

    by_pid = {int(w.worker_id.rsplit(":", 1)[1]): w for w in rows}
    victim = by_pid[first.pid]
    lost = sorted(  # the hosts of the victim's shard
        db.session.scalars(
            select(Host.address).where(Host.id % 2 == int(victim.last_shard.split("/")[0]))
        )
    )
    time.sleep(next_round_start() + 0.3 * INTERVAL - time.time())  # mid-round
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = time.time()
    time.sleep(INTERVAL + 1)
    taken_over = {a: n for a, n in agents.probes_between(killed_at, killed_at + INTERVAL).items()}

    assert all(taken_over[address] >= 1 for address in lost), taken_over
    # The survivor then sweeps every host, once a round.
    start = next_round_start()
    time.sleep(start + 2 * INTERVAL + 1 - time.time())
    assert set(agents.probes_between(start, start + 2 * INTERVAL).values()) == {2}
    survivor = next(w for w in sweep_workers() if w.worker_id.endswith(f":{second.pid}"))
    assert (survivor.last_shard, survivor.last_sweep_hosts) == ("0/1", HOSTS + 1)
