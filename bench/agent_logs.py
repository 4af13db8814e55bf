"""Log latency and throughput through the agent, next to `docker logs` in the same run.

    .venv/bin/python bench/agent_logs.py [--lines 500] [--megabytes 20]

Latency: a container prints its own clock every 10 ms; each reader records the delay until it
receives the line (same host, same clock). Throughput: a container writes --megabytes of
100-byte lines and exits; each reader reads the whole log once.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from agent_common import container, percentile, running_agent
from agent_portal_relay import portal_relaying_an_agent, relay_lines

from portal.engines import AgentEngine, LocalDockerEngine

CLOCK = "import time\nwhile True:\n    print(repr(time.time()), flush=True)\n    time.sleep(0.01)"
DUMP = (
    "import sys\nline = 'x' * 99 + '\\n'\nchunk = line * 1000\n"
    "for _ in range({chunks}):\n    sys.stdout.write(chunk)\nsys.stdout.flush()"
)


def docker_cli_lines(name: str, follow: bool) -> Iterator[str]:
    """Yield lines of `docker logs` (-f when following), the baseline reader."""
    command = ["docker", "logs", name] + (["-f", "--tail", "0"] if follow else [])
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1)
    assert process.stdout is not None
    try:
        yield from process.stdout
    finally:
        process.kill()
        process.wait()


def engine_lines(engine: LocalDockerEngine | AgentEngine, name: str, follow: bool) -> Iterator[str]:
    """Yield log data through a ContainerEngine."""
    stream = engine.logs(name, follow=follow, tail=0 if follow else None)
    try:
        for chunk in stream:
            yield chunk.data
    finally:
        stream.close()


def measure_latency(lines: Iterator[str], count: int) -> list[float]:
    """Return delays in ms of the next count lines, each stamped by the container when written."""
    delays = []
    for line in lines:
        try:
            delays.append((time.time() - float(line)) * 1000)
        except ValueError:
            continue
        if len(delays) >= count:
            break
    return delays


def measure_throughput(lines: Iterator[str]) -> tuple[float, float]:
    """Read a whole log; return (megabytes, seconds)."""
    start, size = time.perf_counter(), 0
    for line in lines:
        size += len(line)
    return size / 1e6, time.perf_counter() - start


def best_of(
    repeats: int, read: Callable[[str, bool], Iterator[str]], name: str
) -> tuple[float, float]:
    """Return the fastest of several full reads: on a shared machine the others measure neighbours."""
    runs = [measure_throughput(read(name, False)) for _ in range(repeats)]
    return min(runs, key=lambda result: result[1])


def process_cpu_seconds(pid: int) -> float:
    """Return user+system CPU time of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def agent_cpu_per_megabyte(
    agent_pid: int, read: Callable[[str, bool], Iterator[str]], name: str
) -> tuple[float, float]:
    """Read the log once more; return CPU seconds per MB spent by the agent and by this client."""
    agent_before, client_before = process_cpu_seconds(agent_pid), time.process_time()
    megabytes, _ = measure_throughput(read(name, False))
    agent_cpu = process_cpu_seconds(agent_pid) - agent_before
    return agent_cpu / megabytes, (time.process_time() - client_before) / megabytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=500, help="lines per latency reader")
    parser.add_argument("--megabytes", type=int, default=20, help="log size for throughput")
    parser.add_argument("--repeats", type=int, default=3, help="throughput reads; best counts")
    args = parser.parse_args()
    with running_agent() as (agent, ca), portal_relaying_an_agent() as relay:
        agent_engine = AgentEngine(agent.url, agent.token, ca)
        local_engine = LocalDockerEngine()
        portal_url, token, host_id, _ = relay
        readers: dict[str, Callable[[str, bool], Iterator[str]]] = {
            "docker logs -f (baseline)": docker_cli_lines,
            "agent (AgentEngine)": lambda n, f: engine_lines(agent_engine, n, f),
            "agent + portal (SSE relay)": lambda n, f: relay_lines(
                portal_url, token, host_id, n, f
            ),
            "docker SDK (LocalDockerEngine)": lambda n, f: engine_lines(local_engine, n, f),
        }
        print(f"latency: a line every 10 ms, {args.lines} lines per reader")
        with container(["python3", "-u", "-c", CLOCK], "bench-clock") as name:
            time.sleep(1)
            latency = {label: measure_latency(read(name, True), args.lines)
                       for label, read in readers.items()}  # fmt: skip
        base = latency["docker logs -f (baseline)"]
        for label, delays in latency.items():
            p50, p95 = percentile(delays, 0.5), percentile(delays, 0.95)
            print(f"  {label:32} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  "
                  f"(p95 x{p95 / percentile(base, 0.95):.2f} of baseline)")  # fmt: skip
        chunks = args.megabytes * 10
        dump = ["python3", "-c", DUMP.format(chunks=chunks)]
        print(f"throughput: reading a finished {args.megabytes} MB log, best of {args.repeats}")
        with container(dump, "bench-dump") as name:
            subprocess.run(["docker", "wait", name], check=True, stdout=subprocess.DEVNULL)
            results = {label: best_of(args.repeats, read, name) for label, read in readers.items()}
            cpu = agent_cpu_per_megabyte(agent.pid, readers["agent (AgentEngine)"], name)
        base_rate = results["docker logs -f (baseline)"]
        for label, (megabytes, seconds) in results.items():
            rate = megabytes / seconds
            print(f"  {label:32} {megabytes:6.1f} MB in {seconds:5.2f} s = {rate:6.1f} MB/s  "
                  f"(x{rate / (base_rate[0] / base_rate[1]):.2f} of baseline)")  # fmt: skip
        print(f"  CPU per MB through the agent (load-independent): agent {cpu[0] * 1000:.0f} ms, "
              f"client (AgentEngine parsing) {cpu[1] * 1000:.0f} ms")  # fmt: skip
        agent_engine.close()
        local_engine.close()


if __name__ == "__main__":
    main()
