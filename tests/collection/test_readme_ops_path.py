"""The collection README's ops path, run as written on a fresh DinD host.

Every fenced block of ansible_collections/spectr/core/README.md whose info string holds
`readme-test` is a step, taken in the README's order:

    ```bash readme-test pip        the control node's `pip install` line: a fresh virtual
                                   environment gets exactly those packages and what they
                                   require, linked from the test environment (no index)
    ```yaml readme-test file=NAME  written to NAME in the working folder; in inventory.yml the
                                   host's address, port, user and SSH key become the test
                                   host's, and nothing else changes
    ```bash readme-test            run by bash in the working folder on the control node
    ```bash readme-test host       run by bash on the host over SSH, as the inventory's user

The control node's environment is that virtual environment's bin/ and the system's, a home
and an ANSIBLE_COLLECTIONS_PATH in temporary folders, and SPECTR_SRC (this checkout): the
collection comes only from the tarball the README builds. Between steps the test looks at
what each one left (certificates, the agent over mutual TLS, the app's container, the proxy
and Prometheus). Two things stand in for what a test machine lacks: the host's name resolves
through its /etc/hosts (DNS), and the spectr-proxy image, which needs mitmproxy, is a small
image of the host's Python serving the proxy's config and /metrics. The host's apt lists are
marked fresh: every package the roles install is already in the image, and no host reaches a
mirror.
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import re
import shlex
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.collection.ansible_runs import REPO_ROOT
from tests.collection.control_node import (
    ControlNode,
    make_control_node,
    pip_install_requirements,
)
from tests.support.testhosts import (
    TestHost,
    cleanup_key_pair,
    run_docker,
    ssh_options,
    start_test_host,
)

README = REPO_ROOT / "ansible_collections/spectr/core/README.md"
FENCE = re.compile(r"^```(\S+)[ \t]+([^\n]*\breadme-test\b[^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
STEP_TIMEOUT = 900
# SPECTR_README_PROFILE=1 pytest -s ...: time every task (profile_tasks) and print the recaps.
PROFILE = os.environ.get("SPECTR_README_PROFILE") == "1"
# The playbooks of the ops path, in the order the README runs them.
PLAYBOOKS = ("pki", "bootstrap", "registry", "deploy_app", "remove_app", "proxy", "monitoring")


@dataclass(frozen=True)
class Block:
    """One marked code block of the README."""

    language: str
    words: tuple[str, ...]
    text: str

    @property
    def file(self) -> str | None:
        """Return NAME of `file=NAME`, or None."""
        return next((word[5:] for word in self.words if word.startswith("file=")), None)

    @property
    def kind(self) -> str:
        """Return pip, file, host or control."""
        if "pip" in self.words:
            return "pip"
        if self.file:
            return "file"
        return "host" if "host" in self.words else "control"

    def runs(self, playbook: str) -> bool:
        """Whether this block runs `ansible-playbook spectr.core.<playbook>`."""
        return re.search(rf"ansible-playbook\s+spectr\.core\.{playbook}\b", self.text) is not None


def readme_blocks() -> list[Block]:
    """Return the README's marked blocks in order."""
    return [
        Block(match[1], tuple(match[2].split()[1:]), match[3])
        for match in FENCE.finditer(README.read_text())
    ]


def test_readme_marks_the_whole_ops_path() -> None:
    """The README keeps every step the ops-path test runs (fast: no host)."""
    blocks = readme_blocks()
    kinds = [block.kind for block in blocks]
    playbooks = [name for block in blocks for name in PLAYBOOKS if block.runs(name)]
    host_text = "\n".join(block.text for block in blocks if block.kind == "host")

    assert kinds[0] == "pip"
    assert "inventory.yml" in [block.file for block in blocks]
    assert playbooks == list(PLAYBOOKS)
    assert "docker push" in host_text and "docker pull" in host_text
    inventory = next(block for block in blocks if block.file == "inventory.yml")
    assert len(_inventory_hosts(yaml.safe_load(inventory.text))) == 1


def _inventory_hosts(inventory: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return every host entry of a YAML inventory (in `hosts:` of any group), by name."""
    hosts: dict[str, dict[str, Any]] = {}

    def walk(group: dict[str, Any]) -> None:
        for name, variables in (group.get("hosts") or {}).items():
            hosts.setdefault(name, {})
            if variables:
                hosts[name] = variables
        for child in (group.get("children") or {}).values():
            walk(child or {})

    for group in inventory.values():
        walk(group or {})
    return hosts


def _group_vars(inventory: dict[str, Any]) -> dict[str, Any]:
    return dict((inventory.get("all") or {}).get("vars") or {})


@dataclass
class OpsPath:
    """The working folder, the control node and the host the README's steps run on."""

    work: Path
    control: ControlNode
    environment: dict[str, str]
    host: TestHost
    timings: list[tuple[str, float]] = field(default_factory=list)
    inventory: dict[str, Any] = field(default_factory=dict)

    def run(self, block: Block) -> None:
        """Take one step: write its file, or run it on the control node or the host."""
        started = time.monotonic()
        if block.kind == "file":
            self.write_file(block)
        elif block.kind == "host":
            self.shell_on_host(block.text)
        else:
            self.shell_on_control_node(block.text)
        playbooks = " + ".join(name for name in PLAYBOOKS if block.runs(name))
        label = block.file or playbooks or block.text.strip().splitlines()[0][:70]
        self.timings.append((f"{block.kind}: {label}", time.monotonic() - started))

    def write_file(self, block: Block) -> None:
        assert block.file is not None
        text = block.text
        if block.file == "inventory.yml":
            self.inventory = yaml.safe_load(text)
            text = yaml.safe_dump(self._substituted(self.inventory), sort_keys=False)
            self._resolve_host_names()
        (self.work / block.file).write_text(text)

    def _substituted(self, inventory: dict[str, Any]) -> dict[str, Any]:
        """The inventory with the test host's address, port, user and key, nothing else."""
        connection = {
            "ansible_host": self.host.address,
            "ansible_port": self.host.port,
            "ansible_user": self.host.user,
            "ansible_ssh_private_key_file": str(self.host.private_key_path),
            "ansible_ssh_common_args": " ".join(ssh_options()),
        }
        document = copy.deepcopy(inventory)

        def walk(group: dict[str, Any]) -> None:
            hosts = group.get("hosts") or {}
            for name in hosts:
                hosts[name] = {**(hosts[name] or {}), **connection}
            for child in (group.get("children") or {}).values():
                walk(child or {})

        for group in document.values():
            walk(group or {})
        return document

    def _resolve_host_names(self) -> None:
        """Let the host find itself by its inventory name, as DNS would (docker push gpu-01:5000)."""
        address = run_docker(
            "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            self.host.container_name,
        ).strip()  # fmt: skip
        names = " ".join(_inventory_hosts(self.inventory))
        self.host.exec("sh", "-c", f"echo '{address} {names}' >> /etc/hosts")

    def shell_on_control_node(self, script: str) -> str:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=self.work,
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, _failure("control node", script, result)
        if PROFILE:
            print(result.stdout[-2500:])
        return result.stdout

    def shell_on_host(self, script: str, user: str | None = None) -> str:
        result = subprocess.run(
            self.host.ssh_command("bash", "-euo", "pipefail", "-s", user=user or self.host.user),
            input=script,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, _failure("host", script, result)
        return result.stdout

    def read_work_file(self, name: str) -> dict[str, Any]:
        return yaml.safe_load((self.work / name).read_text())


def _failure(where: str, script: str, result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"README step failed on the {where} (exit {result.returncode}):\n{script}\n"
        f"--- stdout (end)\n{result.stdout[-6000:]}\n--- stderr (end)\n{result.stderr[-3000:]}"
    )


# --- what each step must have left -----------------------------------------------------------


def _check_certificates(path: OpsPath) -> None:
    """pki: a CA, the host's server certificate for its address, a client certificate."""
    [name] = _inventory_hosts(path.inventory)
    pki = path.work / "pki"
    for file in ("ca.crt", "ca.key", f"{name}.crt", f"{name}.key", "client.crt", "client.key"):
        assert (pki / file).is_file(), file
    assert (pki / "ca.key").stat().st_mode & 0o077 == 0


def _check_bootstrap(path: OpsPath) -> None:
    """bootstrap: the agent answers over mutual TLS with pki/'s client certificate; Docker
    trusts the registry's CA in certs.d."""
    pki = path.work / "pki"
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "client.crt"), str(pki / "client.key"))
    token = _group_vars(path.inventory)["agent_token"]
    connection = http.client.HTTPSConnection(
        path.host.address, path.host.published_ports[7443], context=context, timeout=30
    )
    try:
        connection.request("GET", "/v1/health", headers={"Authorization": f"Bearer {token}"})
        answer = connection.getresponse()
        status, body = answer.status, answer.read()
    finally:
        connection.close()
    assert status == 200 and json.loads(body)["status"] == "ok"
    for entry in _group_vars(path.inventory)["docker_engine_registry_cas"]:
        trusted = path.host.exec("cat", f"/etc/docker/certs.d/{entry['registry']}/ca.crt")
        assert trusted.strip() == (pki / "ca.crt").read_text().strip()


def _check_app_deployed(path: OpsPath) -> None:
    app = path.read_work_file("app.yml")
    labels = path.host.exec("docker", "inspect", "-f", "{{json .Config.Labels}}", app["app_name"])
    state = path.host.exec("docker", "inspect", "-f", "{{.State.Running}}", app["app_name"])
    assert json.loads(labels)["spectr.app"] == app["app_name"]
    assert state.strip() == "true"


def _check_app_removed(path: OpsPath) -> None:
    app = path.read_work_file("app.yml")
    left = path.host.exec("docker", "ps", "-aq", "--filter", f"label=spectr.app={app['app_name']}")
    assert left.strip() == ""


STANDIN_PROXY = """\
import http.server, os, sys
config = sys.argv[sys.argv.index("--config-file") + 1]
port = int(os.environ["SPECTR_PROXY_ADMIN_PORT"])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path not in ("/metrics", "/config.json"):
            return self.send_error(404)
        body = b"spectr_proxy_standin 1\\n"
        if self.path == "/config.json":
            with open(config, "rb") as handle:
                body = handle.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def _push_standin_proxy_image(path: OpsPath) -> None:
    """Stand in for deploy/build-images.sh's spectr-proxy, pushed where proxy.yml says."""
    image = shlex.quote(path.read_work_file("proxy.yml")["proxy_image"])
    path.shell_on_host(f"""
work=$(mktemp -d)
python=$(readlink -f /usr/bin/python3)
stdlib=$("$python" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')
mkdir -p "$work/usr/local/bin"
{{ printf '#!%s\\n' "$python"; cat; }} >"$work/usr/local/bin/spectr-proxy" <<'PY'
{STANDIN_PROXY}PY
chmod 755 "$work/usr/local/bin/spectr-proxy"
tar -chf "$work/image.tar" --exclude=__pycache__ --exclude="${{stdlib#/}}/test" \\
    -C / $(ldd "$python" | grep -o '/[^ ]*' | sed 's|^/||') "${{python#/}}" "${{stdlib#/}}" \\
    -C "$work" usr/local/bin/spectr-proxy
docker import "$work/image.tar" {image} >/dev/null
docker push {image} >/dev/null
rm -rf "$work"
""")


def _check_proxy(path: OpsPath) -> None:
    routes = path.read_work_file("proxy.yml")["proxy_routes"]
    config = json.loads(path.shell_on_host("curl -sf http://127.0.0.1:9180/config.json"))
    running = path.host.exec("docker", "inspect", "-f", "{{.State.Running}}", "spectr-proxy")
    assert [route["name"] for route in config["routes"]] == [route["name"] for route in routes]
    assert running.strip() == "true"


def _check_monitoring(path: OpsPath) -> None:
    ready = path.shell_on_host("curl -sf http://127.0.0.1:9090/-/ready")
    config = path.host.exec("cat", "/etc/spectr-monitoring/prometheus.yml")
    assert "ready" in ready.lower()
    assert "cert_file: /etc/spectr-monitoring/secrets/agent-client.crt" in config


Hook = Callable[[OpsPath], None]
BEFORE: dict[str, Hook] = {"proxy": _push_standin_proxy_image}
AFTER: dict[str, Hook] = {
    "pki": _check_certificates,
    "bootstrap": _check_bootstrap,
    "deploy_app": _check_app_deployed,
    "remove_app": _check_app_removed,
    "proxy": _check_proxy,
    "monitoring": _check_monitoring,
}


@pytest.fixture
def fresh_host() -> Iterator[TestHost]:
    host = start_test_host("readme", dind=True, start_docker=False, extra_ports=(7443,))
    # Every package the roles install is in the image: no apt update, no mirror.
    host.exec("touch", "/var/lib/apt/lists")
    yield host
    host.remove()
    cleanup_key_pair(host.key_pair)


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.timeout(1800)  # ~2 min; 6.5-10 min measured on 2 heavily loaded cores
def test_readme_ops_path_runs_as_written(fresh_host: TestHost, tmp_path: Path) -> None:
    blocks = readme_blocks()
    [pip] = [block for block in blocks if block.kind == "pip"]
    control = make_control_node(tmp_path / "venv", pip_install_requirements(pip.text))
    work = tmp_path / "ops"
    (tmp_path / "home").mkdir()
    work.mkdir()
    environment = control.environment(
        tmp_path / "home",
        ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "collections"),
        ANSIBLE_NOCOLOR="1",
        SPECTR_SRC=str(REPO_ROOT),
        **({"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"} if PROFILE else {}),
    )
    path = OpsPath(work, control, environment, fresh_host)

    for block in blocks:
        if block.kind == "pip":
            continue
        hooks = [name for name in PLAYBOOKS if block.runs(name)]
        for name in hooks:
            if name in BEFORE:
                BEFORE[name](path)
        path.run(block)
        for name in hooks:
            if name in AFTER:
                AFTER[name](path)

    print("\nREADME ops path, seconds per step:")  # pytest -s shows them
    for step, seconds in path.timings:
        print(f"  {seconds:6.1f}  {step}")
    print(f"  {sum(seconds for _, seconds in path.timings):6.1f}  in all")
