"""Done-when of the models issue: a model that entered Spectr only as an upload is served on a
test host by a real llama.cpp runtime and answers the official `openai` client through Spectr's
gateway, which records the runtime's own token counts.

Every piece is real and reached only through Spectr:
- a `spectr run` process (portal, embedded worker, ticker) on SQLite, queue and usage on Redis;
- Spectr's registry: Debian's docker-registry deployed on this machine by the portal's
  `deploy_registry` operation (the spectr.core.registry role, TLS from the Spectr CA, htpasswd),
  reached by the test host on this machine's Docker bridge address;
- a Docker-in-Docker SSH test host, added by its bridge IP and bootstrapped through the API
  (the agent installed over SSH); nothing is loaded into it by hand: the llama.cpp image comes
  from Spectr's registry (mirrored from this machine's engine by the `mirror_image` operation)
  and the model's files from Spectr's registry too (fetched by the agent);
- the tiny GGUF written with the gguf package (random weights: no public model is reachable),
  uploaded through `POST /api/v1/models/uploads`;
- a spectr-proxy process that takes its config document from the portal over HTTP and writes
  usage to Redis, which the portal ingests.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from portal.registry.engine_images import CERTS_DIR
from proxy.tests.proxy_harness import ProxyProcess
from tests.e2e.conftest import SpectrProcess
from tests.hosts.conftest import free_port, wait_for
from tests.support import testhosts
from tests.support.process_group import stop_direct_service
from tests.support.testhosts import TestHost, cleanup_key_pair, run_docker, start_test_host
from tests.support.tiny_gguf import exact_count_logit_bias, write_tiny_llama_gguf

# The llama.cpp image may still be compiling on a fresh machine (its build script holds a lock).
pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.timeout(1800)]

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL, APP, HOST = "tiny-llama", "tiny-llama-server", "cpu-node-1"
CONTEXT = 256
SERVICE_LOG_DIR = "/var/log/spectr"  # where the service role's direct mode writes its output
LLAMA_COMMAND = [
    "python3", "-m", "llama_cpp.server", "--model", "{model_source}",
    "--model_alias", "{model_name}", "--n_ctx", "{context_length}",
    "--host", "0.0.0.0", "--port", "{port}",
]  # fmt: skip


class Phases:
    """Wall-clock time of each phase of the test, printed at the end (pass or fail)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.seconds: dict[str, float] = {}
        self._mark = self.started

    def done(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = round(now - self._mark, 1)
        self._mark = now

    def report(self) -> str:
        lines = [f"  {name:<28} {seconds:7.1f} s" for name, seconds in self.seconds.items()]
        total = time.monotonic() - self.started
        return "\n".join(["phases:", *lines, f"  {'total':<28} {total:7.1f} s"])


def bridge_gateway() -> str:
    """This machine's address on Docker's default bridge (docker0): what test hosts reach."""
    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True, text=True, check=True
    ).stdout
    return out.split(" inet ", 1)[1].split("/", 1)[0]


@pytest.fixture
def spectr_registry(spectr_process: SpectrProcess, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Spectr's registry deployed on the Spectr node by the portal, on the bridge address."""
    portal = spectr_process
    assert portal.api.get("/registry").status_code == 200  # the page records the Spectr node
    node = next(h for h in portal.api.get("/api/v1/hosts").json() if h["is_local"])
    port = free_port()
    name = f"spectr-test-registry-{uuid.uuid4().hex[:8]}"
    address = f"{bridge_gateway()}:{port}"
    body = {
        "host_id": node["id"], "address": address, "port": port, "service_name": name,
        "config_dir": str(tmp_path / "registry" / "config"),
        "storage_path": str(tmp_path / "registry" / "storage"),
        "service_manager": "direct",  # no systemd on this machine
        "gc_schedule": "",  # no cron file outside the temporary folder
    }  # fmt: skip
    try:
        deployed = portal.succeeded(portal.api.post("/api/v1/registries/spectr/deploy", json=body))
        assert deployed["result"]["address"] == address
        yield {"address": address, "service_name": name, "operation": deployed}
    finally:
        stop_direct_service(name, "/usr/bin/docker-registry")
        shutil.rmtree(CERTS_DIR / address, ignore_errors=True)  # the node's push trusted it
        Path(SERVICE_LOG_DIR, f"{name}.log").unlink(missing_ok=True)
        shutil.rmtree(tmp_path / "registry", ignore_errors=True)  # ~340 MB of image layers


@pytest.fixture
def dind_host() -> Iterator[TestHost]:
    """A Docker-in-Docker SSH test host, reached by its address on the Docker bridge."""
    host = start_test_host("e2e-models", dind=True)
    try:
        host.address = run_docker(
            "inspect", "-f", "{{.NetworkSettings.IPAddress}}", host.container_name
        ).strip()
        host.port = 22
        host.wait_for_ssh()
        yield host
    finally:
        host.remove()
        cleanup_key_pair(host.key_pair)


@pytest.fixture
def gateway_proxy(spectr_process: SpectrProcess) -> Iterator[ProxyProcess]:
    """spectr-proxy on the portal's config document, with a service token of its own."""
    portal = spectr_process
    portal.cli("user", "create", "gateway", "--role", "operator",
               stdin_env={"SPECTR_NEW_USER_PASSWORD": "gateway service password"})  # fmt: skip
    token = portal.cli("token", "create", "gateway", "--name", "spectr-proxy")
    token_file = portal.instance / "proxy-token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    proxy = ProxyProcess(
        args=["--portal-url", portal.url, "--portal-token-file", str(token_file),
              "--poll-interval", "1", "--redis-url", portal.redis_url],
        redis_prefix=portal.redis_prefix,
    )  # fmt: skip
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
        shutil.rmtree(proxy.workdir, ignore_errors=True)


def test_an_uploaded_model_answers_the_openai_client_through_the_gateway(
    spectr_process: SpectrProcess,
    spectr_registry: dict[str, Any],
    dind_host: TestHost,
    gateway_proxy: ProxyProcess,
    tmp_path: Path,
) -> None:
    portal, phases = spectr_process, Phases()
    phases.seconds["registry deploy (fixture)"] = _seconds(spectr_registry["operation"])
    app_id = None
    try:
        host_id = _add_and_bootstrap(portal, dind_host)
        phases.done("host add + bootstrap + access")

        image = _llama_image()
        phases.done("llama image build (cached)")
        runtime_id, reference = _mirror_and_create_runtime(
            portal, image, dind_host, spectr_registry
        )
        phases.done("image push into registry")

        model = _upload_tiny_model(portal, tmp_path)
        phases.done("upload + import")

        app_id, replica, deploy_log = _deploy(
            portal, model, (runtime_id, reference), host_id, dind_host
        )
        phases.done("deploy (fetch + pull + run)")
        phases.seconds["  of which model fetch"] = _between(
            deploy_log, "does not hold", f"{HOST}: done in"
        )
        phases.seconds["  of which pull + run (role)"] = _between(
            deploy_log, f"{HOST}: done in", "The LLM gateway now sends"
        )

        key = _gateway_key_and_listing(portal, gateway_proxy, replica)
        phases.done("gateway lists the model")
        _openai_client_through_the_gateway(portal, gateway_proxy, key, replica, phases)
    finally:
        print("\n" + phases.report())
        if app_id is not None:  # the host goes with its container; this checks removal works
            _remove_app(portal, app_id)


def _seconds(operation: dict[str, Any]) -> float:
    started = datetime.fromisoformat(operation["started_at"].replace("Z", "+00:00"))
    finished = datetime.fromisoformat(operation["finished_at"].replace("Z", "+00:00"))
    return round((finished - started).total_seconds(), 1)


def _between(lines: list[dict[str, Any]], first: str, last: str) -> float:
    """Seconds between the first log line containing `first` and the next containing `last`."""
    start = next(i for i, line in enumerate(lines) if first in line["message"])
    end = next(i for i, line in enumerate(lines) if i > start and last in line["message"])
    at = [datetime.fromisoformat(lines[i]["at"].replace("Z", "+00:00")) for i in (start, end)]
    return round((at[1] - at[0]).total_seconds(), 1)


def _add_and_bootstrap(portal: SpectrProcess, host: TestHost) -> int:
    api = portal.api
    added = api.post("/api/v1/hosts", json={
        "name": HOST, "address": host.address, "ssh_port": host.port,
        "ssh_user": "root", "ssh_private_key": host.private_key_path.read_text(),
    })  # fmt: skip
    assert added.status_code == 201, added.text
    host_id = added.json()["id"]
    boot = portal.succeeded(api.post(f"/api/v1/hosts/{host_id}/bootstrap", json={}))
    assert any("Wait for the agent's health endpoint" in line for line in boot["log"])
    shown = api.get(f"/api/v1/hosts/{host_id}").json()
    assert shown["status"] == "ready", shown["status_reason"]
    assert shown["agent_url"] == f"https://{host.address}:7443"
    access = api.post("/api/v1/registries/spectr/access", json={"host_ids": [host_id]})
    portal.succeeded(access)
    return host_id


def _llama_image() -> str:
    built = subprocess.run(
        [str(REPO_ROOT / "tests" / "images" / "build-llama-server.sh")],
        capture_output=True, text=True, timeout=1700,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    return built.stdout.strip().splitlines()[-1]


def _mirror_and_create_runtime(
    portal: SpectrProcess, image: str, host: TestHost, registry: dict[str, Any]
) -> tuple[int, str]:
    """Push the image from this machine's engine into Spectr's registry; the runtime uses it."""
    mirrored = portal.succeeded(
        portal.api.post("/api/v1/registries/spectr/mirror", json={"source": image})
    )
    reference = mirrored["result"]["reference"]
    assert reference == f"{registry['address']}/{image}"
    with pytest.raises(
        testhosts.TestHostError, match="No such image"
    ):  # the host has never seen it
        host.exec("docker", "image", "inspect", reference)
    runtime = portal.api.post("/api/v1/runtimes", json={
        "name": "llama-cpp-cpu", "kind": "llamacpp", "image": reference, "port": 8080,
        "command_template": LLAMA_COMMAND, "health_path": "/v1/models",
        "openai_base_path": "/v1", "supported_formats": ["gguf"], "requires_gpu": False,
        "overhead_mib": 64,
    })  # fmt: skip
    assert runtime.status_code == 201, runtime.text
    return runtime.json()["id"], reference


def _upload_tiny_model(portal: SpectrProcess, tmp_path: Path) -> dict[str, Any]:
    gguf = write_tiny_llama_gguf(tmp_path / "tiny.gguf", context_length=CONTEXT)
    accepted = portal.api.post(
        "/api/v1/models/uploads",
        params={"name": MODEL, "filename": gguf.name, "license": "mit"},
        content=gguf.read_bytes(),
        headers={"Content-Type": "application/octet-stream"},
    )
    imported = portal.succeeded(accepted)
    assert imported["result"]["revision"] == 1, imported["result"]
    model = next(m for m in portal.api.get("/api/v1/models").json() if m["name"] == MODEL)
    # Every fact comes from the file: nobody typed them.
    assert (model["format"], model["source_kind"], model["source"]) == (
        "gguf", "registry", f"models/{MODEL}"
    )  # fmt: skip
    assert (model["context_length"], model["num_layers"], model["num_kv_heads"]) == (CONTEXT, 2, 2)
    assert model["head_dim"] == 16 and model["quantization"] == "fp32"
    assert model["size_bytes"] == gguf.stat().st_size
    return model


def _deploy(
    portal: SpectrProcess,
    model: dict[str, Any],
    runtime: tuple[int, str],
    host_id: int,
    host: TestHost,
) -> tuple[int, str, list[dict[str, Any]]]:
    api, (runtime_id, image) = portal.api, runtime
    assert api.get(f"/api/v1/hosts/{host_id}/models").json() == []  # not distributed before
    created = api.post(f"/api/v1/models/{model['id']}/deploy", json={
        "name": APP, "runtime_id": runtime_id, "host_id": host_id, "gpus": [],
        "context_length": CONTEXT,
    })  # fmt: skip
    assert created.status_code == 201, created.text
    app = created.json()
    operation = portal.succeeded(app["last_operation_id"])
    log = operation["log"]

    def index(text: str) -> int:
        return next(i for i, line in enumerate(log) if text in line)

    # The files first, then the container, then the gateway.
    fetching = index(f"{HOST} does not hold models/{MODEL}:r1 yet: fetching it.")
    fetched = index(f"{HOST}: tiny.gguf fetched")
    running = index("Run the application's container")
    joined = index("The LLM gateway now sends requests for this model to")
    assert fetching < fetched < running < joined, log

    [held] = api.get(f"/api/v1/hosts/{host_id}/models").json()
    digest_hex = held["digest"].split(":", 1)[1]
    folder = f"/var/lib/spectr/models/sha256-{digest_hex}"
    assert (held["model"], held["state"], held["path"]) == (MODEL, "present", folder)
    assert [h["host_id"] for h in api.get(f"/api/v1/models/{model['id']}/hosts").json()] == [
        host_id
    ]
    host.exec("test", "-f", f"{folder}/tiny.gguf")
    container = json.loads(host.exec("docker", "inspect", APP))[0]
    assert container["State"]["Running"] is True
    [mount] = [m for m in container["Mounts"] if m["Destination"] == f"/models/{MODEL}"]
    assert (mount["Source"], mount["RW"]) == (folder, False)
    assert container["Config"]["Image"] == image
    pulled = json.loads(host.exec("docker", "image", "inspect", image))[0]
    registry_address = image.split("/", 1)[0]
    assert any(d.startswith(f"{registry_address}/") for d in pulled["RepoDigests"])
    assert f"/models/{MODEL}/tiny.gguf" in container["Config"]["Cmd"]
    assert "HF_HUB_OFFLINE=1" in container["Config"]["Env"]
    [published] = container["NetworkSettings"]["Ports"]["8080/tcp"]
    assert published["HostIp"] == host.address
    replica = f"http://{host.address}:{published['HostPort']}"
    return app["id"], replica, operation["log_lines"]


def _gateway_key_and_listing(portal: SpectrProcess, proxy: ProxyProcess, replica: str) -> dict:
    api = portal.api
    [gateway_model] = [m for m in api.get("/api/v1/proxy/models").json() if m["name"] == MODEL]
    assert gateway_model["replicas"] == [replica]
    # The runtime loads the model before it listens: it answers once it can serve.
    wait_for(lambda: _answers(f"{replica}/v1/models"), 120, "the llama.cpp server to answer")
    created = api.post("/api/v1/proxy/keys", json={"name": "e2e", "models": [MODEL]})
    assert created.status_code == 201, created.text
    key = created.json()

    def listed() -> bool:
        answer = httpx.get(f"{proxy.url}/v1/models", trust_env=False,
                           headers={"authorization": f"Bearer {key['key']}"})  # fmt: skip
        return answer.status_code == 200 and MODEL in [m["id"] for m in answer.json()["data"]]

    wait_for(listed, 30, "the proxy to list the model for the key", interval=0.2)
    return key


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2, trust_env=False).status_code == 200
    except httpx.TransportError:
        return False


def _openai_client_through_the_gateway(
    portal: SpectrProcess,
    proxy: ProxyProcess,
    key: dict[str, Any],
    replica: str,
    phases: Phases,
) -> None:
    client = OpenAI(
        base_url=f"{proxy.url}/v1", api_key=key["key"], max_retries=0, timeout=120,
        http_client=httpx.Client(trust_env=False),
    )  # fmt: skip
    assert MODEL in [model.id for model in client.models.list()]
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say something."}]

    chat = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=8, logit_bias=exact_count_logit_bias()
    )
    usage = chat.usage
    assert usage is not None and usage.completion_tokens == 8 and usage.prompt_tokens > 0
    assert chat.choices[0].message.content
    phases.done("first answer (models + chat)")
    recorded = _usage_of(portal, key, requests=1)
    phases.done("usage recorded by the portal")
    assert (recorded["prompt_tokens"], recorded["completion_tokens"]) == (
        usage.prompt_tokens, usage.completion_tokens
    )  # fmt: skip

    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=messages, max_tokens=8, stream=True,
            logit_bias=exact_count_logit_bias(),  # no early </s>: several content chunks
        )
    )  # fmt: skip
    phases.done("streamed answer")
    assert len(chunks) >= 8
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    _usage_of(portal, key, requests=2)
    # The rows say where the counts came from: the runtime's `usage` for the plain answer; the
    # stream's chunks, estimated by the proxy (this runtime sends no usage in a stream, even asked).
    rows = _usage_rows(portal)
    print(f"\nusage: runtime said {usage.prompt_tokens}+{usage.completion_tokens}; rows: {rows}")
    assert [(r["stream"], r["tokens_source"], r["model"], r["status"]) for r in rows] == [
        (0, "usage", MODEL, 200), (1, "estimated", MODEL, 200)
    ]  # fmt: skip
    assert (rows[0]["prompt_tokens"], rows[0]["completion_tokens"]) == (
        usage.prompt_tokens, usage.completion_tokens
    )  # fmt: skip
    assert rows[1]["completion_tokens"] == 8  # one content chunk per token
    assert rows[0]["replica"] == rows[1]["replica"] == replica


def _usage_rows(portal: SpectrProcess) -> list[dict[str, Any]]:
    """The portal's usage rows, read from its SQLite database (read-only)."""
    uri = f"file:{portal.instance / 'spectr.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as connection:
        connection.row_factory = sqlite3.Row
        rows = connection.execute(
            "SELECT stream, model, status, replica, prompt_tokens, completion_tokens, extra"
            " FROM gateway_usage ORDER BY id"
        ).fetchall()
    return [
        {**dict(row), "tokens_source": json.loads(row["extra"]).get("tokens_source")}
        for row in rows
    ]


def _usage_of(portal: SpectrProcess, key: dict[str, Any], requests: int) -> dict[str, Any]:
    """The portal's usage of the key once it counts `requests` requests."""

    def counted() -> dict[str, Any] | None:
        rows = portal.api.get("/api/v1/proxy/usage", params={"group_by": "key"}).json()
        row = next((r for r in rows if r["group"] == key["public_id"]), None)
        return row if row and row["requests"] == requests else None

    return wait_for(counted, 30, f"{requests} request(s) in the usage of the key", interval=0.3)


def _remove_app(portal: SpectrProcess, app_id: int) -> None:
    removed = portal.finished(portal.api.post(f"/api/v1/apps/{app_id}/remove"), timeout=300)
    assert removed["state"] == "succeeded", removed["log"][-20:]
    assert all(m["name"] != MODEL for m in portal.api.get("/api/v1/proxy/models").json())
