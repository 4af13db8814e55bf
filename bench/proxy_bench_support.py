"""Processes and a lean HTTP/1.1 client for bench/proxy_latency.py."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
STANDIN = REPO_ROOT / "proxy" / "tests" / "llm_standin.py"


@dataclass
class Service:
    name: str
    port: int
    proc: subprocess.Popen
    host: str = "bench"  # the Host header requests carry (and the SNI over TLS)
    tls: ssl.SSLContext | None = None  # a client context: the path is reached over TLS

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A new client connection to the path (TLS with SNI `host` when `tls` is set)."""
        if self.tls is None:
            return await asyncio.open_connection("127.0.0.1", self.port)
        return await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=self.tls, server_hostname=self.host
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}: {proc.args!r}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def start_upstream(port: int) -> Service:
    """Start the stand-in model server (http.server, Nagle off) in its own process."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(STANDIN),
            "--port",
            str(port),
            "--name",
            "bench",
            "--chunk-delay",
            "0",
        ],
        stdout=subprocess.DEVNULL,
    )
    wait_for_port(port, proc)
    return Service("direct", port, proc)


def nginx_binary() -> str:
    """Return Debian's nginx, installing the package when it is missing."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if found:
        return found
    print("installing Debian's nginx package ...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-q", "nginx"], check=True, env=env,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return shutil.which("nginx", path="/usr/sbin:/usr/bin") or "/usr/sbin/nginx"


NGINX_CONF = """
worker_processes 1;
daemon off;
user root;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream standin {{ server 127.0.0.1:{upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://standin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"""


def start_nginx(workdir: Path, upstream_port: int) -> Service:
    """Run nginx as a keep-alive reverse proxy (one worker, like one proxy process)."""
    binary = nginx_binary()
    folder = workdir / "nginx"
    folder.mkdir()
    port = free_port()
    conf = folder / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=folder, upstream=upstream_port, port=port))
    proc = subprocess.Popen([binary, "-p", str(folder), "-c", str(conf)])
    wait_for_port(port, proc)
    return Service("nginx", port, proc)


LITELLM_VENV = Path.home() / ".cache" / "spectr-bench" / "litellm-venv"
LITELLM_CONF = """model_list:
  - model_name: bench
    litellm_params:
      model: openai/bench
      api_base: http://127.0.0.1:{upstream}/v1
      api_key: stand-in
general_settings:
  master_key: {secret}
litellm_settings:
  telemetry: false
"""


def litellm_binary() -> Path:
    """LiteLLM's proxy from PyPI in a venv of its own (its pins clash with Spectr's), made once."""
    binary = LITELLM_VENV / "bin" / "litellm"
    if not binary.exists():
        print("installing litellm[proxy] from PyPI into", LITELLM_VENV, "...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        subprocess.run([str(LITELLM_VENV / "bin" / "pip"), "install", "-q", "litellm[proxy]"],
                       check=True)  # fmt: skip
    return binary


def start_litellm(workdir: Path, upstream_port: int, secret: str) -> Service:
    """Run LiteLLM's proxy (one uvicorn worker, master key only: no database, so no per-key
    limits or spend tracking, less work than Spectr's gateway does) in front of the upstream."""
    folder = workdir / "litellm"
    folder.mkdir()
    conf = folder / "config.yaml"
    conf.write_text(LITELLM_CONF.format(upstream=upstream_port, secret=secret))
    port = free_port()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
           "NO_PROXY": "127.0.0.1,localhost"}  # fmt: skip
    with open(folder / "out.log", "wb") as out:  # the child keeps its own copy of the file
        proc = subprocess.Popen(
            [str(litellm_binary()), "--config", str(conf), "--host", "127.0.0.1", "--port",
             str(port), "--num_workers", "1"],
            cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    wait_for_port(port, proc, timeout_s=180)
    return Service("litellm", port, proc)


def start_proxy(
    workdir: Path,
    config: Path,
    redis_url: str,
    prefix: str,
    workers: int,
    gateway_path: str = "lean",
) -> Service:
    """Run spectr-proxy on the config file, access log off, metrics on."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy", "--config-file", str(config), "--listen-host", "127.0.0.1",
         "--listen-port", str(port), "--admin-port", str(free_port()), "--redis-url", redis_url,
         "--redis-prefix", prefix, "--confdir", str(workdir / f"proxy-{gateway_path}"),
         "--workers", str(workers), "--log-level", "WARNING", "--gateway-path", gateway_path],
        cwd=REPO_ROOT,
    )  # fmt: skip
    wait_for_port(port, proc, timeout_s=60)
    time.sleep(0.5 * workers)  # every worker binds the port; give the last ones time to join
    return Service(f"gateway ({gateway_path})", port, proc)


async def http_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, body: bytes, secret: str
) -> int:
    """POST a completion on a keep-alive connection, read the whole response, return its status."""
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s"
        % (host.encode(), secret.encode(), len(body), body)
    )
    head = await reader.readuntil(b"\r\n\r\n")
    lower = head.lower()
    at = lower.find(b"content-length:")
    if at >= 0:
        await reader.readexactly(int(lower[at + 15 : lower.find(b"\r\n", at)]))
    else:
        await read_chunked(reader)
    return int(head[9:12])


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        body += chunk[:-2]
        if size == 0:
            return body


async def run_concurrent(
    service: Service, clients: int, seconds: float, body: bytes, secret: str
) -> float:
    """Keep `clients` connections busy for `seconds`; return completed requests per second."""
    deadline = time.perf_counter() + seconds
    done = 0

    async def client() -> None:
        nonlocal done
        reader, writer = await service.connect()
        while time.perf_counter() < deadline:
            if await http_request(reader, writer, service.host, body, secret) == 200:
                done += 1
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return done / (time.perf_counter() - start)


async def time_to_first_event(
    service: Service, count: int, body: bytes, secret: str
) -> list[float]:
    """Stream `count` completions; return ms from sending each to its first SSE event."""
    reader, writer = await service.connect()
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\n"
            b"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s"
            % (service.host.encode(), secret.encode(), len(body), body)
        )
        await reader.readuntil(b"\r\n\r\n")
        first = b""
        while b"data:" not in first:  # comments (": ping") may come before the first event
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            assert size, "the stream ended before its first event"
            first = await reader.readexactly(size + 2)
        samples.append((time.perf_counter() - start) * 1000)
        await read_chunked(reader)
    writer.close()
    return samples


def tree_cpu_seconds(pid: int) -> float:
    """Return user+system CPU seconds of a process and all its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        pending += [int(c) for c in children]
    return total


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def tear_down(started: list[Service], redis_url: str, prefix: str, workdir: Path) -> None:
    """Stop what a bench started (last first), drop its Redis keys and its folder."""
    import redis

    for service in reversed(started):
        service.stop()
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    shutil.rmtree(workdir, ignore_errors=True)
