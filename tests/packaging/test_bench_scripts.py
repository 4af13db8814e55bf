"""Every benchmark under bench/ stays runnable with one command: each script starts and prints
its usage, and the files the benchmarks start (stand-ins, helper scripts) exist where they look.

(bench/proxy_latency.py once looked for the stand-in model server under tests/proxy/ after it
had moved to proxy/tests/, and failed on its first step; no test ran the benchmarks.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(
    path for path in BENCH.glob("*.py")
    if not path.name.startswith("_") and "argparse" in path.read_text()
)  # fmt: skip


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_each_benchmark_starts_and_prints_its_usage(script: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(script), "--help"],
        capture_output=True, text=True, timeout=120, cwd=BENCH.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


def test_the_files_the_proxy_benchmarks_start_exist() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import proxy_bench_support
    finally:
        sys.path.remove(str(BENCH))
    assert Path(proxy_bench_support.STANDIN).is_file()
