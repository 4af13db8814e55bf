"""The Makefile behind the README's `make run` and `make test` (issue 13, finding 21): the port
and address chosen on make's command line, Spectr alone installed for `make run`, the test
toolchain only for the targets that test, each install once and again after pyproject.toml
changes.

Real make on this checkout's Makefile, with VENV pointing at a folder of this test. pip stands
in as a script that writes down what it was asked (there is no package index here); `spectr`
is this checkout's, so `make run` really serves.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.process_group import stop_process_group

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
RECORDING_PIP = """#!/bin/sh
echo "$*" >> "$(dirname "$0")/../pip-calls"
"""


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A virtual environment's shape: its python (this one), a recording pip, `spectr`."""
    folder = tmp_path / "venv"
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "python").symlink_to(sys.executable)
    (folder / "bin" / "spectr").symlink_to(Path(sys.executable).with_name("spectr"))
    pip = folder / "bin" / "pip"
    pip.write_text(RECORDING_PIP)
    pip.chmod(0o755)
    return folder


def _make(venv: Path, *args: str, dry: bool = True, **env: str) -> str:
    done = subprocess.run(
        ["make", "-C", str(ROOT), "--no-print-directory", *(["-n"] if dry else []),
         f"VENV={venv}", *args],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return done.stdout


def _pip_calls(venv: Path) -> list[str]:
    calls = venv / "pip-calls"
    return calls.read_text().splitlines() if calls.exists() else []


def _age(venv: Path, stamp: str, seconds_after_pyproject: float) -> None:
    path = venv / stamp
    path.touch()
    moment = PYPROJECT.stat().st_mtime + seconds_after_pyproject
    os.utime(path, (moment, moment))


def test_make_run_installs_spectr_alone_and_the_test_targets_add_the_toolchain(
    venv: Path,
) -> None:
    run = _make(venv, "run")
    # the portal and the agent distribution it imports (agent/ is a distribution of its own)
    assert f"{venv}/bin/pip install -q -e ./agent -e .\n" in run
    assert "[dev]" not in run
    for target in ("test-fast", "lint", "test"):
        dev = "install -q -e './agent[test]' -e './proxy[test]' -e '.[dev]'"
        assert f"{venv}/bin/pip {dev}" in _make(venv, target), target


def test_each_install_runs_once_and_again_when_pyproject_changes(venv: Path) -> None:
    _make(venv, "install-dev", dry=False)
    assert _pip_calls(venv) == ["install -q -e ./agent[test] -e ./proxy[test] -e .[dev]"]
    _make(venv, "install", dry=False)  # .[dev] holds Spectr: nothing more to install
    _make(venv, "install-dev", dry=False)
    assert _pip_calls(venv) == ["install -q -e ./agent[test] -e ./proxy[test] -e .[dev]"]

    _age(venv, ".spectr-runtime-installed", -60)  # as if pyproject.toml changed since
    _make(venv, "install", dry=False)
    assert _pip_calls(venv) == [
        "install -q -e ./agent[test] -e ./proxy[test] -e .[dev]",
        "install -q -e ./agent -e .",
    ]
    _age(venv, ".spectr-dev-installed", -60)
    assert "-e '.[dev]'" in _make(venv, "lint")


def test_the_port_and_address_come_from_makes_command_line(venv: Path) -> None:
    _age(venv, ".spectr-runtime-installed", 60)
    plain = _make(venv, "run")
    assert "pip" not in plain
    assert plain.endswith(f"{venv}/bin/spectr run --host 127.0.0.1 --port 8000\n")
    chosen = _make(venv, "run", "PORT=8123", "HOST=0.0.0.0")
    assert chosen.endswith("spectr run --host 0.0.0.0 --port 8123\n")
    # A shell's own HOST (often the machine's name) is not taken for the address to serve on.
    from_shell = _make(venv, "run", HOST="build-box", PORT="8124")
    assert from_shell.endswith("spectr run --host 127.0.0.1 --port 8124\n")


@pytest.mark.slow
def test_make_run_serves_on_the_port_asked_for_and_says_where_spectr_is(
    venv: Path, tmp_path: Path
) -> None:
    _age(venv, ".spectr-runtime-installed", 60)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECTR_")}
    env.update(PYTHONPATH=str(ROOT), SPECTR_INSTANCE_PATH=str(tmp_path / "instance"),
               SPECTR_ADMIN_PASSWORD="make-run-password", SPECTR_MODELS_DIR=str(tmp_path / "m"))  # fmt: skip
    log = tmp_path / "make-run.log"
    with log.open("wb") as out:
        make = subprocess.Popen(
            ["make", "-C", str(ROOT), "--no-print-directory", f"VENV={venv}", "run",
             f"PORT={port}", "HOST=127.0.0.1"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and make.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            time.sleep(0.3)
        else:
            pytest.fail(f"make run did not serve on {port}:\n{log.read_text()}")
    finally:
        stop_process_group(make, 30)
    said = log.read_text()
    assert f"The spectr command is {venv}/bin/spectr" in said
    assert "Created admin user 'admin'." in said
