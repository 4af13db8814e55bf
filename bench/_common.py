"""Shared helpers of the benchmarks: a throw-away database, spectr processes, CPU, statistics.

Every bench runs against the machine's own Postgres and Redis (127.0.0.1), in a database and
under a queue name of its own, so parallel runs never see each other's rows or tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
POSTGRES_ADMIN_URL = os.environ.get(
    "SPECTR_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_BASE_URL = os.environ.get("SPECTR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ADMIN_PASSWORD = "bench-" + uuid.uuid4().hex
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def temporary_database(name: str | None = None) -> Iterator[str]:
    """Create a Postgres database for this run and drop it at the end; yield its SQLAlchemy URL."""
    name = name or f"spectr_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def temporary_queue() -> Iterator[str]:
    """Yield a unique huey queue name and delete its Redis keys at the end."""
    name = f"spectr-bench-{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        client = redis.Redis.from_url(REDIS_BASE_URL)
        keys = list(client.scan_iter(match=f"*{name}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def spectr_env(instance: Path, database_url: str, queue_name: str, **extra: str) -> dict[str, str]:
    """Environment for spectr processes of this run: Postgres + Redis, quiet logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECTR_")}
    env.update(
        SPECTR_INSTANCE_PATH=str(instance),
        SPECTR_DATABASE_URL=database_url,
        SPECTR_REDIS_URL=REDIS_BASE_URL,
        SPECTR_QUEUE_NAME=queue_name,
        SPECTR_LOG_LEVEL="WARNING",
        SPECTR_ADMIN_PASSWORD=ADMIN_PASSWORD,
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    env.update(extra)
    return env


def spectr(args: Sequence[str], env: dict[str, str]) -> str:
    """Run one `spectr` command to completion and return its stdout."""
    done = subprocess.run(
        [str(BIN / "spectr"), *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"spectr {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def init_instance(env: dict[str, str]) -> str:
    """Run `spectr init` (migrations, admin) and return a fresh admin API token."""
    spectr(["init"], env)
    return spectr(["token", "create", "admin", "--name", "bench"], env).strip().splitlines()[-1]


@contextlib.contextmanager
def background(command: Sequence[str], env: dict[str, str], log_name: str) -> Iterator[int]:
    """Start a process in its own process group, yield its pid, then stop that group."""
    log_path = Path(tempfile.gettempdir()) / f"{log_name}-{uuid.uuid4().hex[:6]}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc.pid
    finally:
        _stop_group(proc)
        if proc.returncode not in (0, -signal.SIGTERM, -signal.SIGINT):
            print(f"  ({log_name} exited {proc.returncode}; its log is {log_path})")
        else:
            log_path.unlink(missing_ok=True)


def _stop_group(proc: subprocess.Popen) -> None:
    # The group is the one this bench created with start_new_session: only our own processes.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_for_http(url: str, timeout: float = 60.0) -> None:
    """Poll `url` until it answers 200, or give up after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def _proc_table() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command name, CPU seconds) for every process on the machine."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        table[int(entry.name)] = (int(fields[1]), name, cpu)
    return table


def process_tree_cpu(root_pids: Sequence[int], table: dict[int, tuple[int, str, float]]) -> float:
    """CPU seconds used so far by `root_pids` and all their descendants."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(pid)
    total, todo = 0.0, list(root_pids)
    while todo:
        pid = todo.pop()
        total += table[pid][2] if pid in table else 0.0
        todo.extend(children.get(pid, []))
    return total


def named_cpu(names: set[str], table: dict[int, tuple[int, str, float]]) -> float:
    """CPU seconds of the live processes with these command names (Postgres, Redis)."""
    return sum(cpu for _, name, cpu in table.values() if name in names)


def machine_busy_cpu() -> float:
    """CPU seconds all processes on the machine have used (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


DATA_SERVERS = {"postgres", "redis-server"}


@dataclass
class CpuMeter:
    """Cores busy in a phase: this client, the measured server, Postgres + Redis, the rest.

    The machine is shared with other work; "other" is what none of ours used, so a phase
    that ran while something else was busy shows it.
    """

    server_pids: Sequence[int]

    def __post_init__(self) -> None:
        self._start = self._read()

    def _read(self) -> tuple[float, ...]:
        table = _proc_table()
        server = process_tree_cpu(self.server_pids, table)
        data = named_cpu(DATA_SERVERS, table)
        return time.monotonic(), time.process_time(), server, data, machine_busy_cpu()

    def cores(self) -> dict[str, float]:
        """Cores busy since creation, by who used them."""
        end = self._read()
        wall = max(end[0] - self._start[0], 1e-9)
        client, server, data, machine = ((end[i] - self._start[i]) / wall for i in (1, 2, 3, 4))
        other = max(machine - client - server - data, 0.0)
        return {"client": client, "server": server, "pg+redis": data, "other": other}


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of `values` (fraction between 0 and 1)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print rows under headers, columns padded to their widest cell."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * width for width in widths))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


class RawHttp:
    """One keep-alive HTTP/1.1 connection with next to no client-side work per request.

    httpx spent ~2.7 ms of CPU per request here, more than the server's own share on this
    2-core machine; this client reads only the status line, headers and a Content-Length body.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def reconnect(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, raw_request: bytes) -> int:
        """Send a prepared request and return the answer's status code (body read and dropped)."""
        if self._writer is None:
            await self.reconnect()
        assert self._reader is not None and self._writer is not None
        self._writer.write(raw_request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self._reader.readexactly(length)
        if b"connection: close" in head.lower():
            await self.reconnect()
        return status

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def http_request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """Prepare the bytes of one HTTP/1.1 request for RawHttp."""
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


WHAT_IF = {
    "no-pre-ping": "SQLAlchemy pool without pre-ping (one SELECT 1 less per connection checkout)",
    "async-commit": "synchronous_commit=off on the bench database (no WAL flush wait per commit)",
}


def apply_what_ifs(what_ifs: Sequence[str], database_url: str, env: dict[str, str]) -> None:
    """Diagnosis only: change one thing outside the portal's code (engine options, Postgres)."""
    if "no-pre-ping" in what_ifs:
        # Flask's from_prefixed_env turns '__' into nested keys of SQLALCHEMY_ENGINE_OPTIONS.
        env["SPECTR_SQLALCHEMY_ENGINE_OPTIONS__pool_pre_ping"] = "false"
        env["SPECTR_SQLALCHEMY_ENGINE_OPTIONS__pool_size"] = "10"
        env["SPECTR_SQLALCHEMY_ENGINE_OPTIONS__max_overflow"] = "20"
    if "async-commit" in what_ifs:
        name = database_url.rsplit("/", 1)[1]
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    for what_if in what_ifs:
        print(f"what-if: {WHAT_IF[what_if]}")


@contextlib.contextmanager
def round_trip_trace(engine: Any) -> Iterator[Counter[str]]:
    """Count what a block sends to the database: checkouts (a ping each), BEGIN, statements."""
    from sqlalchemy import event

    seen: Counter[str] = Counter()
    pre_ping = bool(getattr(engine.pool, "_pre_ping", False))
    listeners = {
        "checkout": lambda *_: seen.update(["SELECT 1 (pre-ping)"] if pre_ping else []),
        "begin": lambda *_: seen.update(["BEGIN"]),
        "commit": lambda *_: seen.update(["COMMIT"]),
        "rollback": lambda *_: seen.update(["ROLLBACK"]),
        "reset": lambda *_: seen.update(["ROLLBACK (pool reset on return)"]),
        "before_cursor_execute": lambda _c, _cur, sql, *_: seen.update([sql.split()[0].upper()]),
    }
    for name, listener in listeners.items():
        event.listen(engine, name, listener)
    try:
        yield seen
    finally:
        for name, listener in listeners.items():
            event.remove(engine, name, listener)


def describe_trace(seen: Counter[str]) -> str:
    """One line: total round trips, then each kind with its count."""
    parts = ", ".join(f"{count} {kind}" for kind, count in seen.most_common())
    return f"{sum(seen.values())} database round trips ({parts})"


def idle_machine_ceiling(rate: float, cores: dict[str, float], machine_cores: int = 2) -> float:
    """Rate the measured work could reach with the whole machine to itself: cores / CPU per unit.

    An estimate, not a measurement: CPU seconds taken under contention run a little high.
    """
    ours = cores["client"] + cores["server"] + cores["pg+redis"]
    return machine_cores * rate / ours if ours else float("nan")
