"""`spectr models ...` as an operator runs it on the Spectr node: a real `spectr` process per
command on a fresh embedded instance, no worker running (the command does the work itself),
a real docker-registry as Spectr's registry."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.tests.registry_process import RegistryProcess, start_registry
from tests.support.tiny_gguf import write_tiny_llama_gguf

pytestmark = [pytest.mark.slow]
SPECTR = Path(sys.executable).parent / "spectr"


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[tuple[dict[str, str], RegistryProcess]]:
    """An initialised instance whose database records a registry as Spectr's own."""
    from portal.app import create_app
    from portal.core.pki import ca_certificate_pem, issue_server_certificate
    from portal.extensions import db
    from portal.registry.models import SPECTR as SPECTR_KIND
    from portal.registry.models import Registry

    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECTR_")}
    env.update(SPECTR_INSTANCE_PATH=str(tmp_path / "instance"), SPECTR_ADMIN_PASSWORD="cli-test-pw",
               SPECTR_MODELS_DIR=str(tmp_path / "node-models"))  # fmt: skip
    subprocess.run([str(SPECTR), "init"], env=env, check=True, capture_output=True)
    app = create_app({"SPECTR_INSTANCE_PATH": env["SPECTR_INSTANCE_PATH"]})
    with app.app_context():
        cert, key = issue_server_certificate("Spectr registry", ["127.0.0.1"])
        registry = start_registry(tmp_path / "registry", cert, key, ca_certificate_pem(),
                                  "spectr", "cli-registry-password")  # fmt: skip
        db.session.add(Registry(name="spectr", kind=SPECTR_KIND, url=registry.url,
                                username="spectr", password="cli-registry-password",
                                ca_pem=registry.ca_pem))  # fmt: skip
        db.session.commit()
        db.engine.dispose()
    yield env, registry
    registry.stop()


def spectr(env: dict[str, str], *args: str, tty: bool = False) -> subprocess.CompletedProcess[str]:
    """Run one `spectr` command; with tty, in a pseudo-terminal as a person at a shell would."""
    command = [str(SPECTR), *args]
    if tty:  # click draws its progress bar only on a terminal
        command = ["script", "-qfec", shlex.join(command), "/dev/null"]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_import_distribute_and_list_from_the_command_line(
    instance: tuple[dict[str, str], RegistryProcess], tmp_path: Path
) -> None:
    env, _ = instance
    (tmp_path / "files").mkdir()
    gguf = write_tiny_llama_gguf(tmp_path / "files" / "tiny.gguf", seed=3)

    imported = spectr(
        env, "models", "import", str(gguf), "--name", "cli-tiny", "--license", "mit", tty=True
    )

    assert imported.returncode == 0, imported.stderr + imported.stdout
    assert "model.import" in imported.stdout and "succeeded" in imported.stdout
    assert "Stored in" in imported.stdout and "1 file(s) uploaded" in imported.stdout
    assert "[####" in imported.stdout and "100%" in imported.stdout  # the progress bar
    files = spectr(env, "models", "files", "cli-tiny")
    assert files.returncode == 0, files.stderr
    assert "tiny.gguf" in files.stdout and "sha256:" in files.stdout

    nobody = spectr(env, "models", "hosts", "cli-tiny")
    assert "No host holds this model yet" in nobody.stdout
    sent = spectr(env, "models", "distribute", "cli-tiny", "--host", "spectr-node")
    assert sent.returncode == 0, sent.stderr + sent.stdout
    assert "tiny.gguf fetched" in sent.stdout and "succeeded" in sent.stdout
    held = spectr(env, "models", "hosts", "cli-tiny")
    assert "spectr-node" in held.stdout and "present" in held.stdout
    assert str(tmp_path / "node-models") in held.stdout

    unknown = spectr(env, "models", "distribute", "cli-tiny", "--host", "no-such-host")
    assert unknown.returncode != 0 and "No host 'no-such-host'" in unknown.stderr
    wrong = spectr(env, "models", "import", str(gguf), "--name", "Bad Name")
    assert wrong.returncode != 0 and "lowercase" in wrong.stderr
