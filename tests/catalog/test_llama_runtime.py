"""A real LLM runtime on this machine: llama-cpp-python's server with a tiny random GGUF.

No GPU and no public weights: tests/images/build-llama-server.sh builds the CPU image (the
compiled wheel is cached; 5-15 minutes the first time), tests/support/tiny_gguf.py writes the
model. The official openai client talks to it as it would to any OpenAI-compatible server.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
from docker.models.containers import Container
from openai import OpenAI

from tests.support.tiny_gguf import exact_count_logit_bias, write_tiny_llama_gguf

# The first test waits for the image, whose cold wheel compile outlasts the suite's 600 s.
pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.timeout(1800)]

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTEXT = 256
ALIAS = "tiny"


def server_command(port: int = 8080) -> list[str]:
    """The catalog's command_template for this image, filled in."""
    return [
        "python3", "-m", "llama_cpp.server",
        "--model", "/models/tiny.gguf", "--model_alias", ALIAS,
        "--n_ctx", str(CONTEXT), "--host", "0.0.0.0", "--port", str(port),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    subprocess.run(
        [str(REPO_ROOT / "scripts" / "ensure-docker.sh")], check=True, capture_output=True
    )
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture(scope="module")
def llama_image(engine: docker.DockerClient) -> str:
    built = subprocess.run(
        [str(REPO_ROOT / "tests" / "images" / "build-llama-server.sh")],
        check=True,
        capture_output=True,
        text=True,
        timeout=1800,  # a cold wheel compile on 2 busy cores
    )
    return built.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    write_tiny_llama_gguf(folder / "tiny.gguf", context_length=CONTEXT)
    folder.chmod(0o755)
    return folder


@pytest.fixture
def run_server(
    engine: docker.DockerClient, llama_image: str, model_dir: Path
) -> Iterator[Callable[..., Container]]:
    """Start the server on the model folder (read-only); every container is removed after."""
    started: list[Container] = []

    def run(**options: object) -> Container:
        container = engine.containers.run(
            llama_image,
            server_command(),
            name=f"spectr-test-llama-{uuid.uuid4().hex[:8]}",
            detach=True,
            volumes={str(model_dir): {"bind": "/models", "mode": "ro"}},
            environment={"HF_HUB_OFFLINE": "1"},
            **options,
        )
        started.append(container)
        return container

    yield run
    for container in started:
        container.remove(force=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_answers(url: str, container: Container, timeout: float = 60) -> float:
    """Poll url until it answers 200; return the seconds that took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError):
            pass
        container.reload()
        if container.status == "exited":
            pytest.fail(f"server exited:\n{container.logs().decode()[-3000:]}")
        time.sleep(0.05)
    pytest.fail(f"no answer from {url}:\n{container.logs().decode()[-3000:]}")


def rss_mib(container: Container) -> float:
    status = container.exec_run(["cat", "/proc/1/status"]).output.decode()
    kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(kib) / 1024


def test_openai_client_against_llama_server(run_server: Callable[..., Container]) -> None:
    port = free_port()
    container = run_server(ports={"8080/tcp": ("127.0.0.1", port)})
    base_url = f"http://127.0.0.1:{port}/v1"
    startup = wait_until_answers(f"{base_url}/models", container)
    print(f"\nllama server answered {startup:.2f} s after start, RSS {rss_mib(container):.0f} MiB")
    client = OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=60)

    assert [model.id for model in client.models.list()] == [ALIAS]

    messages = [{"role": "user", "content": "Say something."}]
    chat = client.chat.completions.create(
        model=ALIAS, messages=messages, max_tokens=8, logit_bias=exact_count_logit_bias()
    )
    assert chat.usage.prompt_tokens > 0
    assert chat.usage.completion_tokens == 8
    assert chat.choices[0].message.content

    stream = client.chat.completions.create(
        model=ALIAS,
        messages=messages,
        max_tokens=8,
        stream=True,
        logit_bias=exact_count_logit_bias(),  # no early </s>: several content chunks
    )
    chunks = list(stream)
    assert len(chunks) >= 8
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    completion = client.completions.create(
        model=ALIAS, prompt="Once upon a time", max_tokens=5, logit_bias=exact_count_logit_bias()
    )
    assert completion.usage.completion_tokens == 5
    assert completion.choices[0].text
    assert rss_mib(container) < 1024


def test_server_runs_without_any_network(run_server: Callable[..., Container]) -> None:
    container = run_server(network_mode="none")
    probe = (
        "import time, urllib.request\n"
        "for _ in range(600):\n"
        "    try:\n"
        "        print(urllib.request.urlopen('http://127.0.0.1:8080/v1/models').read().decode())\n"
        "        break\n"
        "    except OSError:\n"
        "        time.sleep(0.05)\n"
    )
    answer = container.exec_run(["python3", "-c", probe])
    assert answer.exit_code == 0
    assert f'"id":"{ALIAS}"' in answer.output.decode().replace(" ", "")
