"""The ContainerEngine contract, as a test suite anyone can run against their own engine.

Spectr runs it on both of its engines (tests/engines/test_contract.py); an engine from another
package (registered under the `spectr.engines` entry point group) should pass it too. It needs
pytest, the engine and an image on that engine with `sh`, `sleep`, `echo` and `id`:

    # test_my_engine.py
    import pytest
    from portal.engines.contract_suite import ContainerEngineContract

    class TestMyEngine(ContainerEngineContract):
        @pytest.fixture
        def engine(self):
            engine = MyEngine("unix:///run/my-engine.sock")
            yield engine
            engine.close()

        @pytest.fixture
        def image(self):
            return "debian:bookworm-slim"  # already on the engine

    $ pytest test_my_engine.py

Every container the suite makes is named `spectr-contract-…` and removed afterwards through the
engine itself. What the suite checks: health and facts, images, the container lifecycle and
label listing, the GPUs a container asks for (read back by inspect; created, never started, so
no GPU is needed), the error tree (NotFound, Conflict, BadRequest), stats, logs (tail, follow,
close early, the read timeout), exec (collected and streamed, user/workdir/env, timeout).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator

import pytest

from portal.engines.base import ContainerEngine
from portal.engines.errors import BadRequest, Conflict, EngineError, NotFound, Unavailable
from portal.engines.models import ContainerSpec, ExecChunk, ExecExit, GpuRequest, LogChunk

TICKER = ["sh", "-c", "while true; do echo tick; sleep 0.01; done"]


def _spec(image: str, name: str | None, **fields: object) -> ContainerSpec:
    return ContainerSpec(image=image, name=name, command=["sleep", "infinity"], **fields)  # type: ignore[arg-type]


class ContainerEngineContract:
    """Subclass it as Test…, with `engine` and `image` fixtures (see the module's docstring)."""

    @pytest.fixture
    def container_names(self, engine: ContainerEngine) -> Iterator[Callable[[str], str]]:
        """Unique names; every container so named is removed through the engine afterwards."""
        names: list[str] = []

        def make(purpose: str) -> str:
            names.append(f"spectr-contract-{purpose}-{secrets.token_hex(4)}")
            return names[-1]

        yield make
        for name in names:
            with contextlib.suppress(EngineError):
                engine.remove_container(name, force=True, volumes=True)

    def test_health_and_facts(self, engine: ContainerEngine) -> None:
        health = engine.health()
        assert health.reachable and health.engine_version
        facts = engine.facts()
        assert set(facts) >= {"hostname", "os", "kernel", "cpu", "memory", "disks", "docker"}
        assert facts["cpu"]["logical"] >= 1 and facts["memory"]["total_mb"] > 0

    def test_images(self, engine: ContainerEngine, image: str) -> None:
        assert any(image in info.tags for info in engine.list_images())
        assert image in engine.inspect_image(image).tags
        with pytest.raises(NotFound):
            engine.inspect_image("spectr-contract-no-such:image")

    def test_lifecycle_and_label_listing(
        self, engine: ContainerEngine, image: str, container_names: Callable[[str], str]
    ) -> None:
        name, other = container_names("life"), container_names("life")
        label = {"spectr.contract": name}
        created = engine.create_container(_spec(image, name, labels=label), start=False)
        engine.create_container(_spec(image, other, labels={"spectr.contract": other}))
        assert created.state == "created"
        assert [c.name for c in engine.list_containers(label)] == [name]
        assert engine.list_containers(label, include_stopped=False) == []
        assert any(c.name == name for c in engine.list_containers({"spectr.contract": None}))
        engine.start_container(name)
        assert engine.inspect_container(name).state == "running"
        engine.restart_container(name, timeout=0)
        assert engine.inspect_container(name).state == "running"
        engine.stop_container(name, timeout=0)
        stopped = engine.inspect_container(name)
        assert stopped.state == "exited" and stopped.exit_code == 137
        engine.remove_container(name)
        with pytest.raises(NotFound):
            engine.inspect_container(name)

    def test_inspect_reads_back_the_gpus_a_container_asks_for(
        self, engine: ContainerEngine, image: str, container_names: Callable[[str], str]
    ) -> None:
        asks = {
            "by-id": GpuRequest(device_ids=["0", "GPU-4f1c"]),
            "all": GpuRequest(count=-1),
            "two": GpuRequest(count=2),
        }
        for purpose, request in asks.items():
            name = container_names(f"gpus-{purpose}")
            engine.create_container(_spec(image, name, gpus=request), start=False)
            assert engine.inspect_container(name).gpus == request
        name = container_names("no-gpus")
        engine.create_container(_spec(image, name), start=False)
        assert engine.inspect_container(name).gpus is None

    def test_errors_map_to_the_exception_tree(
        self, engine: ContainerEngine, image: str, container_names: Callable[[str], str]
    ) -> None:
        name = container_names("errors")
        engine.create_container(_spec(image, name))
        with pytest.raises(Conflict):
            engine.create_container(_spec(image, name))
        with pytest.raises(Conflict):
            engine.remove_container(name)  # running, no force
        with pytest.raises(NotFound):
            engine.create_container(_spec("spectr-contract-no-such-image:1", None))
        with pytest.raises(NotFound):
            engine.stop_container("spectr-contract-missing")
        with pytest.raises(BadRequest):
            engine.create_container(_spec(image, container_names("bad"), memory_bytes=1024))

    def test_stats(
        self, engine: ContainerEngine, image: str, container_names: Callable[[str], str]
    ) -> None:
        name = container_names("stats")
        engine.create_container(_spec(image, name))
        stats = engine.container_stats(name)
        assert stats.memory_usage_bytes and stats.memory_usage_bytes > 0
        assert stats.cpu_percent >= 0

    def test_logs_tail_follow_and_close_early(
        self, engine: ContainerEngine, image: str, container_names: Callable[[str], str]
    ) -> None:
        name = container_names("logs")
        engine.create_container(ContainerSpec(image=image, name=name, command=TICKER))
        stream = engine.logs(name, follow=True, timestamps=True)
        first = [next(stream) for _ in range(3)]
        stream.close()
        assert all(c.stream == "stdout" and c.data == "tick\n" and c.ts for c in first)
        assert list(engine.logs(name, tail=2)) == [LogChunk("stdout", "tick\n")] * 2
        with pytest.raises(NotFound):
            engine.logs("spectr-contract-missing")

    def test_followed_logs_end_with_the_container(
        self, engine: ContainerEngine, image: str, container_names: Callable[[str], str]
    ) -> None:
        name = container_names("short")
        script = "echo one; echo two >&2; sleep 1"
        engine.create_container(ContainerSpec(image=image, name=name, command=["sh", "-c", script]))
        chunks = list(engine.logs(name, follow=True))
        assert LogChunk("stdout", "one\n") in chunks and LogChunk("stderr", "two\n") in chunks

    def test_a_quiet_followed_log_gives_up_after_its_read_timeout(
        self, engine: ContainerEngine, image: str, container_names: Callable[[str], str]
    ) -> None:
        # Followers resume from the last line on Unavailable; any other error ends their stream.
        name = container_names("quiet")
        engine.create_container(ContainerSpec(image=image, name=name, command=["sleep", "3600"]))
        started = time.monotonic()
        with pytest.raises(Unavailable):
            list(engine.logs(name, follow=True, read_timeout_s=1.0))
        assert time.monotonic() - started >= 0.9

    def test_exec(
        self, engine: ContainerEngine, image: str, container_names: Callable[[str], str]
    ) -> None:
        name = container_names("exec")
        engine.create_container(_spec(image, name))
        result = engine.exec_run(name, ["sh", "-c", "echo out; echo err >&2; exit 5"])
        assert (result.exit_code, result.stdout, result.stderr) == (5, "out\n", "err\n")
        env_result = engine.exec_run(name, ["sh", "-c", 'echo "$A $(pwd) $(id -un)"'],
                                     user="nobody", workdir="/tmp", env={"A": "x"})  # fmt: skip
        assert env_result.stdout == "x /tmp nobody\n"
        events = list(engine.exec_stream(name, ["echo", "$NOT;", "expanded"]))
        assert events == [ExecChunk("stdout", "$NOT; expanded\n"), ExecExit(0)]
        timed_out = engine.exec_run(name, ["sleep", "30"], timeout=0.5)
        assert timed_out.timed_out and timed_out.exit_code is None
        engine.stop_container(name, timeout=0)
        with pytest.raises(Conflict):
            engine.exec_run(name, ["true"])
        with pytest.raises(NotFound):
            engine.exec_run("spectr-contract-missing", ["true"])
