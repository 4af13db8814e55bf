"""Memory of the portal while it receives a multi-hundred-MB image archive upload.

Runs the portal under gunicorn (1 worker, SQLite, no embedded worker: only the upload is
measured), with a real docker-registry on 127.0.0.1 recorded as Spectr's registry, and streams
an archive-sized body to POST /api/v1/registries/spectr/imports. Prints the worker's idle RSS,
its peak RSS during the upload (sampled every 10 ms, and the kernel's VmHWM reset before the
upload), the ratio peak / idle, and upload throughput vs writing the same bytes to local disk.

    .venv/bin/python bench/registry_upload.py [--megabytes 400]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import BIN, background, free_port, init_instance, wait_for_http

CHUNK = 1024 * 1024


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def worker_pid(master: int, timeout: float = 30.0) -> int:
    """The gunicorn worker: the master's only child."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise SystemExit("gunicorn started no worker")


def body(megabytes: int) -> Iterator[bytes]:
    block = os.urandom(CHUNK)
    for _ in range(megabytes):
        yield block


def record_spectr_registry(instance: Path, env: dict[str, str], registry: object) -> None:
    """Record a running registry as Spectr's own, as a deploy would."""
    os.environ.update({k: v for k, v in env.items() if k.startswith("SPECTR_")})
    from portal.app import create_app
    from portal.extensions import db
    from portal.registry.models import SPECTR, Registry

    app = create_app()
    with app.app_context():
        db.session.add(Registry(name="spectr", kind=SPECTR, url=registry.url,  # type: ignore[attr-defined]
                                username="bench", password="bench-password",
                                ca_pem=registry.ca_pem))  # type: ignore[attr-defined]  # fmt: skip
        db.session.commit()


def start_registry(root: Path) -> object:
    from agent.tests.registry_process import start_registry as start
    from portal.core.pki import ca_certificate_pem, issue_server_certificate

    instance = str(root / "instance")
    cert, key = issue_server_certificate("bench", ["127.0.0.1"], instance_path=instance)
    return start(
        root / "registry", cert, key, ca_certificate_pem(instance), "bench", "bench-password"
    )


def sample_peak(pid: int, stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss_kib(pid))
        time.sleep(0.01)


def disk_baseline(folder: Path, megabytes: int) -> float:
    """Seconds to write the same bytes to a file in the same folder, with fsync like a close."""
    started = time.perf_counter()
    with (folder / "baseline.bin").open("wb") as handle:
        for chunk in body(megabytes):
            handle.write(chunk)
    (folder / "baseline.bin").unlink()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=400, help="upload size (MiB), <= 4096")
    args = parser.parse_args()
    megabytes = max(1, min(args.megabytes, 4096))
    root = Path(tempfile.mkdtemp(prefix="spectr-bench-upload-"))
    instance = root / "instance"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECTR_")}
    env.update(SPECTR_INSTANCE_PATH=str(instance), SPECTR_EMBEDDED_WORKER="false",
               SPECTR_LOG_LEVEL="WARNING", SPECTR_ADMIN_PASSWORD="bench-admin-password",
               PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")  # fmt: skip
    registry = None
    try:
        token = init_instance(env)
        registry = start_registry(root)
        record_spectr_registry(instance, env, registry)
        port = free_port()
        command = [str(BIN / "gunicorn"), "-k", "gthread", "--threads", "4", "-w", "1",
                   "-b", f"127.0.0.1:{port}", "--timeout", "600", "portal.app:create_app()"]  # fmt: skip
        with background(command, env, "bench-upload-gunicorn") as master:
            run(port, token, worker_pid(master), megabytes, instance)
    finally:
        if registry is not None:
            registry.stop()  # type: ignore[attr-defined]
        shutil.rmtree(root, ignore_errors=True)


def run(port: int, token: str, pid: int, megabytes: int, instance: Path) -> None:
    base = f"http://127.0.0.1:{port}"
    wait_for_http(f"{base}/healthz")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-tar"}
    with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
        warm = client.post("/api/v1/registries/spectr/imports", content=b"x" * CHUNK)
        assert warm.status_code == 202, warm.text  # the import path is loaded before "idle"
        time.sleep(1)
        idle = rss_kib(pid)
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        peak, stop = [idle], threading.Event()
        sampler = threading.Thread(target=sample_peak, args=(pid, stop, peak), daemon=True)
        sampler.start()
        started = time.perf_counter()
        answer = client.post(
            "/api/v1/registries/spectr/imports", content=body(megabytes),
            headers={"Content-Length": str(megabytes * CHUNK)},
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        stop.set()
        sampler.join()
    assert answer.status_code == 202, answer.text
    hwm = rss_kib(pid, "VmHWM")
    baseline = disk_baseline(instance, megabytes)
    top = max(peak[0], hwm)
    print(f"upload: {megabytes} MiB in {elapsed:.2f} s = {megabytes / elapsed:.0f} MiB/s "
          f"(answered {answer.status_code}, operation {answer.json()['id']})")  # fmt: skip
    print(f"baseline disk write of the same bytes: {baseline:.2f} s = "
          f"{megabytes / baseline:.0f} MiB/s; upload/disk time ratio {elapsed / baseline:.2f}")  # fmt: skip
    print(f"portal worker RSS idle {idle / 1024:.1f} MiB, peak during upload "
          f"{top / 1024:.1f} MiB (sampled {peak[0] / 1024:.1f}, VmHWM {hwm / 1024:.1f}); "
          f"peak/idle ratio {top / idle:.3f}; growth {(top - idle) / 1024:.1f} MiB "
          f"for a {megabytes} MiB body")  # fmt: skip


if __name__ == "__main__":
    main()
