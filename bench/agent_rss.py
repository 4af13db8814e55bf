"""Agent memory: idle RSS, RSS during a bounded log-streaming soak, and RSS after it.

    .venv/bin/python bench/agent_rss.py [--soak-seconds 150] [--clients 4]

Baselines from the same run: a bare Python with ssl + http.server imported (the floor any
stdlib agent pays) and the same plus the docker SDK with a connected client (what the agent
avoids). The target is 30 MB (Portainer's agent starts there).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time

from agent_common import container, rss_kib, running_agent

from portal.engines import AgentEngine, Unavailable

TARGET_KIB = 30 * 1024
TICKER = ["sh", "-c", "while true; do echo tick; sleep 0.01; done"]
FLOOR = "import ssl, http.server, json, time; {extra}; print(1, flush=True); time.sleep(60)"
WITH_DOCKER = "import docker; docker.from_env().version()"


def baseline_rss(extra: str) -> int:
    """Return the RSS of a Python process that imported the given modules."""
    code = FLOOR.format(extra=extra or "pass")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert process.stdout is not None
    process.stdout.readline()
    try:
        return rss_kib(process.pid)
    finally:
        process.kill()
        process.wait()


def warm_up(engine: AgentEngine, name: str) -> None:
    """Touch every kind of endpoint once so lazy imports and caches are loaded."""
    engine.health()
    engine.facts()
    engine.list_images()
    engine.list_containers()
    engine.inspect_container(name)
    engine.exec_run(name, ["true"])
    list(engine.logs(name, tail=5))


def stream_logs(engine: AgentEngine, name: str, stop: threading.Event, counts: list[int]) -> None:
    """Follow logs, reconnecting every 10 s, until stop is set; count frames received."""
    while not stop.is_set():
        stream = engine.logs(name, follow=True, tail=0)
        started = time.monotonic()
        try:
            for _ in stream:
                counts.append(1)
                if stop.is_set() or time.monotonic() - started > 10:
                    break
        except Unavailable:
            pass
        finally:
            stream.close()


def soak(engine: AgentEngine, pid: int, name: str, seconds: int, clients: int) -> list[int]:
    """Run streaming clients for the given time; return RSS samples (KiB) every 5 s."""
    stop = threading.Event()
    counts: list[int] = []
    samples: list[int] = []
    threads = [threading.Thread(target=stream_logs, args=(engine, name, stop, counts))
               for _ in range(clients)]  # fmt: skip
    for thread in threads:
        thread.start()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(5)
        samples.append(rss_kib(pid))
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    print(f"  streamed {len(counts)} log frames over {clients} clients in {seconds} s")
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soak-seconds", type=int, default=150)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    floor, with_docker = baseline_rss(""), baseline_rss(WITH_DOCKER)
    with running_agent() as (agent, ca), container(TICKER, "bench-rss") as name:
        started = rss_kib(agent.pid)
        engine = AgentEngine(agent.url, agent.token, ca)
        warm_up(engine, name)
        time.sleep(1)
        idle = rss_kib(agent.pid)
        samples = soak(engine, agent.pid, name, args.soak_seconds, args.clients)
        time.sleep(5)
        after = rss_kib(agent.pid)
        engine.close()
    half = max(1, len(samples) // 2)
    early, late = sum(samples[:half]) / half, sum(samples[half:]) / max(1, len(samples) - half)
    print(f"baseline: python + ssl + http.server      {floor / 1024:6.1f} MB")
    print(f"baseline: same + docker SDK client         {with_docker / 1024:6.1f} MB")
    print(f"agent right after start                    {started / 1024:6.1f} MB")
    print(f"agent idle after warm-up                   {idle / 1024:6.1f} MB  "
          f"(x{idle / TARGET_KIB:.2f} of the 30 MB target, +{(idle - floor) / 1024:.1f} MB "
          f"over the floor, x{idle / with_docker:.2f} of the docker-SDK floor)")  # fmt: skip
    print(f"agent during soak: min {min(samples) / 1024:.1f} MB  max {max(samples) / 1024:.1f} MB"
          f"  first-half mean {early / 1024:.1f} MB  second-half mean {late / 1024:.1f} MB"
          f"  (growth x{late / early:.3f})")  # fmt: skip
    print(f"agent 5 s after the soak                   {after / 1024:6.1f} MB  "
          f"(x{after / idle:.3f} of idle)")  # fmt: skip


if __name__ == "__main__":
    main()
