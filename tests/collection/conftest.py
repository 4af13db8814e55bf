"""Fixtures for spectr.core's tests: Ansible pointed at this checkout, playbook runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# Modules import `ansible_collections.spectr.core...`; that package lives at the repo root.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.collection.ansible_runs import AnsibleEnvironment  # noqa: E402


@pytest.fixture(scope="session")
def ansible_env(tmp_path_factory: pytest.TempPathFactory) -> AnsibleEnvironment:
    """Ansible settings that keep every file of a run inside a temporary folder."""
    return AnsibleEnvironment(tmp_path_factory.mktemp("ansible-home"))


from tests.support.fixtures import make_test_host  # noqa: E402, F401 - fixture
