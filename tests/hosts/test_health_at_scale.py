"""A sweep at fleet scale: hosts written in groups, container rows only where something changed."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from portal.extensions import db
from portal.hosts.health import Probe, record_probes
from portal.hosts.models import Host, HostContainer
from tests.hosts.test_health import bootstrapped_host, container
from tests.support.statements import counted_statements


def sweep(hosts: list[Host], listings: dict[int, list]) -> None:
    record_probes([Probe(h.id, True, True, "0.1", containers=list(listings[h.id])) for h in hosts])


def test_a_sweep_where_nothing_changed_reads_and_writes_no_container_rows(
    any_db_app: Flask,
) -> None:
    hosts = [bootstrapped_host(f"node-{i}") for i in range(4)]
    listings = {h.id: [container(f"web-{h.id}"), container(f"db-{h.id}")] for h in hosts}
    sweep(hosts, listings)

    with counted_statements(db.engine) as unchanged:
        sweep(hosts, listings)
    listings[hosts[0].id] = [container(f"web-{hosts[0].id}", "exited", "Exited (1) 2 s ago")]
    with counted_statements(db.engine) as one_changed:
        sweep(hosts, listings)

    assert unchanged.touching("host_containers") == []
    # Every host is seen again: one UPDATE ... WHERE id IN for the four of them, not one each.
    assert len([sql for sql in unchanged.sql if sql.startswith("UPDATE hosts")]) == 1
    assert unchanged.writes("hosts") == 1
    # One host changed: its rows are read, one updated, one deleted, nothing else written.
    assert one_changed.writes("host_containers") == 2
    stored = db.session.execute(
        select(HostContainer.host_id, HostContainer.name, HostContainer.state)
    ).all()
    assert (hosts[0].id, f"web-{hosts[0].id}", "exited") in stored
    assert len(stored) == 7


def test_a_sweep_of_many_hosts_sends_a_fixed_number_of_statements(any_db_app: Flask) -> None:
    counts = []
    for size in (10, 60):
        hosts = [bootstrapped_host(f"n{size}-{i}") for i in range(size)]
        listings = {h.id: [container(f"c-{h.id}")] for h in hosts}
        sweep(hosts, listings)  # first sight: rows inserted
        down = [Probe(h.id, answered=False, error="refused") for h in hosts]
        with counted_statements(db.engine) as seen:
            record_probes(down)
            record_probes(down)  # the second miss makes every host unreachable
        counts.append(len([s for s in seen.sql if not s.startswith("INSERT INTO host_status")]))
        assert {h.status for h in hosts} == {"unreachable"}
    assert counts[0] == counts[1]
