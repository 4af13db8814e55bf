"""The three distributions of this repository stand alone: spectr-agent (agent/) and spectr-proxy
(proxy/) install in a clean venv with nothing of the portal, and the portal's wheel holds the
portal only. Each venv is real (python -m venv, pip from the configured index); the full test
suites of agent/ and proxy/ in such a venv run by scripts/dist-alone.sh (README)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
# What the portal alone needs: none of it may come with the agent or the proxy. Flask is not in
# it: mitmproxy requires Flask (for mitmweb), so the proxy has it whatever the portal needs.
PORTAL_ONLY = {
    "flask-smorest", "flask-sqlalchemy", "flask-migrate", "flask-login", "flask-wtf",
    "sqlalchemy", "alembic", "psycopg", "huey", "argon2-cffi", "ansible-core", "ansible-runner",
    "gunicorn", "boto3", "docker", "marshmallow", "spectr",
}  # fmt: skip


def _venv(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, capture_output=True)
    return folder / "bin" / "python"


def _pip(python: Path, *args: str) -> str:
    # Without PYTHONPATH: the checkout on it (build metadata included) is no part of a clean venv.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _installed(python: Path) -> set[str]:
    listed = json.loads(_pip(python, "list", "--format", "json"))
    return {item["name"].lower().replace("_", "-") for item in listed} - {"pip", "setuptools"}


def _import_every_module(python: Path, package: str, folder: Path) -> dict[str, str]:
    """Import each module of the installed package in isolated mode, away from the checkout."""
    script = (
        "import importlib, json, pkgutil, sys\n"
        f"import {package} as p\n"
        "names = [m.name for m in pkgutil.walk_packages(p.__path__, p.__name__ + '.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "print(json.dumps({'file': p.__file__, 'version': p.__version__, 'count': len(names)}))\n"
    )
    done = subprocess.run(
        [str(python), "-I", "-c", script], cwd=folder, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_the_agent_installs_alone_with_prometheus_client_only(tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv")
    _pip(python, "install", "-q", str(REPO_ROOT / "agent"))

    assert _installed(python) == {"spectr-agent", "prometheus-client"}
    imported = _import_every_module(python, "agent", tmp_path)
    assert imported["file"].startswith(str(tmp_path / "venv"))  # the wheel, not the checkout
    assert imported["count"] >= 20
    assert not (Path(imported["file"]).parent / "tests").exists()  # tests stay in the repository
    metadata = _pip(python, "show", "spectr-agent")
    assert f"Version: {imported['version']}" in metadata


def test_the_proxy_installs_alone_without_any_portal_dependency(tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv")
    _pip(python, "install", "-q", str(REPO_ROOT / "proxy"))

    installed = _installed(python)
    assert {"spectr-proxy", "mitmproxy", "redis", "jsonschema", "httpx"} <= installed
    assert installed & PORTAL_ONLY == set()
    assert "spectr-agent" not in installed
    imported = _import_every_module(python, "proxy", tmp_path)
    assert imported["file"].startswith(str(tmp_path / "venv"))
    # the JSON schema of the config document ships as package data
    assert (Path(imported["file"]).parent / "config.schema.json").is_file()


def test_the_portal_wheel_holds_the_portal_and_names_spectr_agent(tmp_path: Path) -> None:
    python = Path(sys.executable)
    _pip(python, "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(REPO_ROOT))

    (wheel,) = tmp_path.glob("spectr-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        requires = archive.read(metadata).decode()
    assert {top for top in tops if not top.endswith(".dist-info")} == {"portal"}
    assert "Requires-Dist: spectr-agent>=0.2" in requires
    assert "Requires-Dist: mitmproxy" not in requires
