"""The agent zipapp the bootstrap run copies to hosts, built on the portal from this checkout.

Built with the collection's own script (the same command the collection README gives ops) into
the instance folder, and rebuilt only when the agent's source changes.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from pathlib import Path

from flask import current_app

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "ansible_collections/spectr/core/scripts/build_agent_zipapp.py"
_lock = threading.Lock()


def agent_artifact_path() -> Path:
    """Return the path of an up-to-date agent zipapp, building it when needed."""
    folder = Path(current_app.instance_path) / "agent"
    artifact = folder / f"spectr-agent-{_source_hash()}.pyz"
    with _lock:
        if not artifact.exists():
            folder.mkdir(parents=True, exist_ok=True)
            partial = artifact.with_suffix(".partial")
            subprocess.run(
                [sys.executable, str(BUILD_SCRIPT), "--source", str(REPO_ROOT),
                 "--output", str(partial)],
                check=True, capture_output=True, timeout=300,
            )  # fmt: skip
            partial.rename(artifact)
    return artifact


def _source_hash() -> str:
    digest = hashlib.sha256(BUILD_SCRIPT.read_bytes())
    # agent/*.py only: the distribution's tests (agent/tests) are not in the zipapp.
    for path in sorted((REPO_ROOT / "agent").glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
