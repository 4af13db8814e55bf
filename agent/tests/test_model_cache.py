"""The host model cache: ModelCache against a real docker-registry, then the agent's routes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.model_cache import FetchError, ModelCache, NotEnoughSpace, NotFound, SpecError
from agent.tests.harness import AgentProcess

MIB = 1024 * 1024
slow = pytest.mark.slow  # starts a docker-registry process (and, for the routes, agents)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(registry: Any, repository: str, data: bytes) -> str:
    """Upload one blob the way a client does: POST an upload, then PUT it with its digest."""
    digest = digest_of(data)
    with registry.http() as client:
        started = client.post(f"/v2/{repository}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["Location"]  # it carries the upload's state in its query
        done = client.put(f"{location}{'&' if '?' in location else '?'}digest={digest}",
                          content=data, headers={"Content-Type": "application/octet-stream"})  # fmt: skip
        assert done.status_code == 201, done.text
    return digest


def model_spec(source: dict[str, Any], name: str, files: dict[str, bytes], **extra: Any) -> dict:
    """Return a pull spec; the model digest stands for its OCI manifest's."""
    entries = [{"path": p, "digest": digest_of(d), "size": len(d)} for p, d in files.items()]
    manifest = json.dumps({"name": name, "files": entries}, sort_keys=True).encode()
    return {"digest": digest_of(manifest), "name": name, "files": entries, "source": source,
            **extra}  # fmt: skip


class Recorder(list):
    """Collect events; `of(kind)` filters them."""

    def __call__(self, event: dict[str, Any]) -> None:
        self.append(event)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self if event["event"] == kind]

    def statuses(self) -> dict[str, str]:
        return {event["path"]: event["status"] for event in self.of("file")}


def sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MIB):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


# -- the registry and two models that share their tokenizer ------------------------------------

TOKENIZER = b'{"tokenizer": "shared"}\n' * 2000
WEIGHTS_A = os.urandom(3 * MIB + 123)
WEIGHTS_B = os.urandom(2 * MIB + 7)


@pytest.fixture(scope="module")
def models(auth_registry: Any) -> dict[str, dict]:
    """Push two models' blobs into the registry; return their specs."""
    sources = {}
    for repository, weights in (("models/alpha", WEIGHTS_A), ("models/beta", WEIGHTS_B)):
        push_blob(auth_registry, repository, weights)
        push_blob(auth_registry, repository, TOKENIZER)
        sources[repository] = {"url": auth_registry.url, "repository": repository,
                               "username": auth_registry.user, "password": auth_registry.password,
                               "ca_pem": auth_registry.ca_pem}  # fmt: skip
    tokenizer = {"tokenizer/tokenizer.json": TOKENIZER}
    return {
        "alpha": model_spec(sources["models/alpha"], "alpha", {"alpha.gguf": WEIGHTS_A, **tokenizer}),
        "beta": model_spec(sources["models/beta"], "beta", {"beta.gguf": WEIGHTS_B, **tokenizer}),
    }  # fmt: skip


@pytest.fixture()
def cache(tmp_path: Path) -> ModelCache:
    return ModelCache(tmp_path / "models")


@slow
def test_pull_writes_blobs_links_and_manifest_and_reports_events(cache, models):
    spec, events = models["alpha"], Recorder()
    done = cache.pull(spec, events)

    total = len(WEIGHTS_A) + len(TOKENIZER)
    assert events[0] == {"event": "start", "bytes_total": total, "bytes_present": 0, "files": 2}
    assert events[-1] == done
    assert done["path"] == str(cache.root / f"sha256-{spec['digest'][7:]}")
    assert done["bytes_fetched"] == total and done["seconds"] >= 0
    assert events.statuses() == {"alpha.gguf": "fetched", "tokenizer/tokenizer.json": "fetched"}
    progress = [e for e in events.of("progress") if e["path"] == "alpha.gguf"]
    assert progress[-1]["bytes_done"] == progress[-1]["bytes_total"] == len(WEIGHTS_A)
    assert len(progress) <= 5  # one per MiB at most, not one per socket read

    folder = Path(done["path"])
    for item in spec["files"]:
        blob = cache.root / "blobs" / "sha256" / item["digest"][7:]
        assert (folder / item["path"]).stat().st_ino == blob.stat().st_ino
        assert blob.stat().st_mode & 0o777 == 0o644
        assert sha256_file(blob) == item["digest"]
    assert not list((cache.root / "blobs" / "sha256").glob("*.partial"))
    manifest = json.loads(
        (cache.root / "manifests" / f"sha256-{spec['digest'][7:]}.json").read_text()
    )
    assert {k: manifest[k] for k in ("digest", "name", "files")} == {
        k: spec[k] for k in ("digest", "name", "files")
    }
    assert re.match(r"\d{4}-\d\d-\d\dT", manifest["pulled_at"])
    [listed] = cache.list()
    assert listed["digest"] == spec["digest"] and listed["size_bytes"] == total
    assert listed["files"] == spec["files"] and cache.get(spec["digest"]) == listed

    again = Recorder()
    assert cache.pull(spec, again)["bytes_fetched"] == 0
    assert set(again.statuses().values()) == {"present"}
    assert again[0]["bytes_present"] == total


@slow
def test_a_second_model_fetches_only_the_file_it_does_not_share(cache, models):
    cache.pull(models["alpha"])
    events = Recorder()
    done = cache.pull(models["beta"], events)

    assert done["bytes_fetched"] == len(WEIGHTS_B)
    assert events.statuses() == {"beta.gguf": "fetched", "tokenizer/tokenizer.json": "present"}
    alpha, beta = (cache.root / f"sha256-{models[m]['digest'][7:]}" for m in ("alpha", "beta"))
    shared = "tokenizer/tokenizer.json"
    assert (alpha / shared).stat().st_ino == (beta / shared).stat().st_ino
    assert (alpha / shared).stat().st_nlink == 3  # the blob and two model folders


@slow
def test_remove_deletes_the_model_and_only_blobs_no_other_model_uses(cache, models):
    cache.pull(models["alpha"])
    cache.pull(models["beta"])
    blobs = cache.root / "blobs" / "sha256"

    assert cache.remove(models["alpha"]["digest"]) == len(WEIGHTS_A)

    assert sorted(p.name for p in blobs.iterdir()) == sorted(
        [digest_of(WEIGHTS_B)[7:], digest_of(TOKENIZER)[7:]]
    )
    assert not (cache.root / f"sha256-{models['alpha']['digest'][7:]}").exists()
    assert [m["name"] for m in cache.list()] == ["beta"]
    with pytest.raises(NotFound):
        cache.remove(models["alpha"]["digest"])
    assert cache.remove(models["beta"]["digest"]) == len(WEIGHTS_B) + len(TOKENIZER)
    assert not list(blobs.iterdir()) and cache.list() == []


@slow
def test_a_corrupted_blob_is_refetched_when_verify_is_on(cache, models):
    spec = models["alpha"]
    cache.pull(spec)
    blob = cache.root / "blobs" / "sha256" / digest_of(WEIGHTS_A)[7:]
    with blob.open("r+b") as handle:  # the model folder's link is the same inode: also broken
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))

    unverified = Recorder()
    cache.pull({**spec, "verify": False}, unverified)
    assert unverified.statuses()["alpha.gguf"] == "present"  # only the size is checked

    events = Recorder()
    done = cache.pull(spec, events)
    assert events.statuses() == {"alpha.gguf": "refetched", "tokenizer/tokenizer.json": "present"}
    assert done["bytes_fetched"] == len(WEIGHTS_A)
    assert sha256_file(Path(done["path"]) / "alpha.gguf") == digest_of(WEIGHTS_A)
    assert (Path(done["path"]) / "alpha.gguf").stat().st_ino == blob.stat().st_ino


@slow
def test_a_partial_download_resumes_with_a_range_request(cache, models):
    cache.ensure()
    partial = cache.root / "blobs" / "sha256" / (digest_of(WEIGHTS_A)[7:] + ".partial")
    partial.write_bytes(WEIGHTS_A[: MIB + 5])

    events = Recorder()
    done = cache.pull(models["alpha"], events)

    assert events[0]["bytes_present"] == MIB + 5
    assert events.statuses()["alpha.gguf"] == "resumed"
    assert done["bytes_fetched"] == len(WEIGHTS_A) - MIB - 5 + len(TOKENIZER)
    assert sha256_file(Path(done["path"]) / "alpha.gguf") == digest_of(WEIGHTS_A)
    assert not partial.exists()


@slow
def test_a_partial_of_wrong_bytes_is_fetched_again_from_zero(cache, models):
    cache.ensure()
    partial = cache.root / "blobs" / "sha256" / (digest_of(WEIGHTS_A)[7:] + ".partial")
    partial.write_bytes(b"\0" * MIB)

    events = Recorder()
    done = cache.pull(models["alpha"], events)

    assert events.statuses()["alpha.gguf"] == "fetched"
    fetched = [e["bytes_fetched"] for e in events.of("file") if e["path"] == "alpha.gguf"]
    assert fetched == [len(WEIGHTS_A) - MIB + len(WEIGHTS_A)]  # the failed resume, then all
    assert sha256_file(Path(done["path"]) / "alpha.gguf") == digest_of(WEIGHTS_A)


@slow
def test_two_pulls_of_one_model_at_once_fetch_each_blob_once(cache, models):
    results: list[dict] = []
    threads = [threading.Thread(target=lambda: results.append(cache.pull(models["alpha"])))
               for _ in range(2)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 2
    assert sum(done["bytes_fetched"] for done in results) == len(WEIGHTS_A) + len(TOKENIZER)
    assert sha256_file(Path(results[0]["path"]) / "alpha.gguf") == digest_of(WEIGHTS_A)
    assert not list((cache.root / "blobs" / "sha256").glob("*.partial"))


@slow
def test_wrong_credentials_fail_the_pull_with_the_registry_status(cache, models):
    spec = models["alpha"]
    spec = {**spec, "source": {**spec["source"], "password": "wrong"}}
    with pytest.raises(FetchError, match="401"):
        cache.pull(spec)
    assert cache.list() == []


# -- without a registry: spec rules, the disk check, a server that ignores Range ----------------

SOURCE = {"url": "https://127.0.0.1:9", "repository": "models/tiny"}
FILE = {"path": "a.gguf", "digest": digest_of(b"x"), "size": 1}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"files": [{**FILE, "path": "../etc/passwd"}]}, "files[0].path"),
        ({"files": [{**FILE, "path": "/etc/passwd"}]}, "files[0].path"),
        ({"files": [FILE, {**FILE, "path": "dir//b"}]}, "files[1].path"),
        ({"files": [FILE, {**FILE, "path": "a.gguf/b"}]}, "files[1].path"),
        ({"files": [FILE, FILE]}, "files[1].path"),
        ({"files": [{**FILE, "size": -1}]}, "files[0].size"),
        ({"files": [{**FILE, "size": True}]}, "files[0].size"),
        ({"files": [{**FILE, "digest": "md5:00"}]}, "files[0].digest"),
        ({"files": []}, "files"),
        ({"digest": "sha256:ABC"}, "digest"),
        ({"name": ""}, "name"),
        ({"verify": "yes"}, "verify"),
        ({"source": {**SOURCE, "url": "ftp://127.0.0.1"}}, "source.url"),
        ({"source": {**SOURCE, "repository": "Models/X"}}, "source.repository"),
        ({"source": {**SOURCE, "token": "t"}}, "source.token"),
        ({"extra": 1}, "extra"),
    ],
)
def test_spec_errors_name_the_field(tmp_path, change, field):
    spec = {"digest": digest_of(b"m"), "name": "m", "files": [FILE], "source": SOURCE, **change}
    with pytest.raises(SpecError) as caught:
        ModelCache(tmp_path).pull(spec)
    assert isinstance(caught.value, ValueError) and caught.value.field == field
    assert str(caught.value).startswith(field)


def test_the_disk_check_refuses_before_anything_is_fetched(tmp_path):
    cache = ModelCache(tmp_path / "models")
    spec = {"digest": digest_of(b"m"), "name": "m", "source": SOURCE,
            "files": [{**FILE, "size": 1 << 60}]}  # fmt: skip
    events = Recorder()
    with pytest.raises(NotEnoughSpace, match=rf"needs {1 << 60} bytes, \d+ free on {cache.root}"):
        cache.pull(spec, events)
    assert events == [] and not list((cache.root / "blobs" / "sha256").iterdir())


class RangeIgnoringServer(ThreadingHTTPServer):
    """Plain HTTP that answers every blob GET with 200 and the whole body, ignoring Range."""

    daemon_threads = True

    def __init__(self, body: bytes) -> None:
        self.body, self.ranges = body, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.ranges.append(self.headers.get("Range"))
                self.send_response(200)
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture()
def blob_server() -> Iterator[Callable[[bytes], RangeIgnoringServer]]:
    servers: list[RangeIgnoringServer] = []

    def start(body: bytes) -> RangeIgnoringServer:
        servers.append(RangeIgnoringServer(body))
        threading.Thread(target=servers[-1].serve_forever, daemon=True).start()
        return servers[-1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _plain_spec(server: RangeIgnoringServer, data: bytes) -> dict:
    source = {"url": f"http://127.0.0.1:{server.server_address[1]}", "repository": "models/tiny"}
    return model_spec(source, "tiny", {"w.bin": data})


def test_a_server_that_ignores_range_restarts_the_file(tmp_path, blob_server):
    data = os.urandom(MIB + 17)
    server = blob_server(data)
    cache = ModelCache(tmp_path)
    cache.ensure()
    (cache.root / "blobs" / "sha256" / f"{digest_of(data)[7:]}.partial").write_bytes(data[:1000])

    events = Recorder()
    done = cache.pull(_plain_spec(server, data), events)

    assert server.ranges == ["bytes=1000-"]
    assert events.statuses() == {"w.bin": "fetched"} and done["bytes_fetched"] == len(data)
    assert sha256_file(Path(done["path"]) / "w.bin") == digest_of(data)


def test_a_digest_mismatch_fails_the_file_and_drops_its_partial(tmp_path, blob_server):
    data = os.urandom(4096)
    spec = _plain_spec(blob_server(data[::-1]), data)  # the server sends other bytes
    cache = ModelCache(tmp_path)

    with pytest.raises(FetchError, match=rf"w.bin: digest mismatch: expected {digest_of(data)}"):
        cache.pull(spec)
    assert not list((cache.root / "blobs" / "sha256").iterdir())
    assert cache.list() == [] and not list((cache.root / "manifests").iterdir())


# -- the agent's routes (real agent processes over TLS) ----------------------------------------

BIG = 200 * MIB


@pytest.fixture(scope="module")
def big_model(auth_registry: Any, models: dict[str, dict]) -> dict:
    """A one-file model of 200 MiB, long enough to kill an agent in the middle of it."""
    data = os.urandom(BIG)
    push_blob(auth_registry, "models/big", data)
    source = {**models["alpha"]["source"], "repository": "models/big"}
    return model_spec(source, "big", {"big.gguf": data})


def pull_lines(client: httpx.Client, spec: dict) -> list[dict[str, Any]]:
    with client.stream("POST", "/v1/models/pull", json=spec) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"] == "application/x-ndjson"
        return [json.loads(line) for line in response.iter_lines() if line]


@slow
def test_routes_pull_list_inspect_and_delete(api, agent, models):
    alpha, beta = models["alpha"]["digest"], models["beta"]["digest"]
    events = pull_lines(api, models["alpha"])
    assert [events[0]["event"], events[-1]["event"]] == ["start", "done"]
    root = Path(agent.config["models_dir"])
    assert events[-1]["path"] == str(root / f"sha256-{alpha[7:]}")
    assert pull_lines(api, models["beta"])[-1]["bytes_fetched"] == len(WEIGHTS_B)

    cache = api.get("/v1/models").json()
    assert cache["root"] == str(root) and cache["free_bytes"] > 0
    listed = {model["digest"]: model for model in cache["models"]}
    assert {alpha, beta} <= set(listed)
    assert listed[alpha]["size_bytes"] == len(WEIGHTS_A) + len(TOKENIZER)
    assert api.get(f"/v1/models/{alpha}").json() == listed[alpha]
    assert api.get(f"/v1/models/sha256%3A{alpha[7:]}").status_code == 200
    assert api.get(f"/v1/models/sha256:{'0' * 64}").json()["code"] == "not_found"
    assert api.get("/v1/models/latest").json()["details"] == {"field": "digest"}

    assert api.delete(f"/v1/models/{alpha}").json() == {"freed_bytes": len(WEIGHTS_A)}
    assert api.delete(f"/v1/models/{alpha}").status_code == 404
    assert api.get(f"/v1/models/{beta}").status_code == 200
    assert (root / "blobs" / "sha256" / digest_of(TOKENIZER)[7:]).is_file()
    assert api.delete(f"/v1/models/{beta}").json() == {
        "freed_bytes": len(WEIGHTS_B) + len(TOKENIZER)
    }


@slow
def test_a_failed_pull_ends_its_stream_with_an_error_line(api, agent, models):
    spec = models["alpha"]
    events = pull_lines(api, {**spec, "source": {**spec["source"], "password": "wrong"}})
    assert events[-1]["event"] == "error" and "401" in events[-1]["message"]
    assert not list((Path(agent.config["models_dir"]) / "blobs" / "sha256").glob("*.partial"))
    assert api.get(f"/v1/models/{spec['digest']}").status_code == 404


@slow
def test_bad_specs_and_a_full_disk_are_refused_before_the_stream(api, agent, models):
    spec = models["alpha"]
    escaping = {**spec, "files": [{**spec["files"][0], "path": "../../etc/cron.d/x"}]}
    answer = api.post("/v1/models/pull", json=escaping)
    assert answer.status_code == 422 and answer.json()["details"] == {"field": "files[0].path"}

    huge = {**spec, "files": [{**spec["files"][0], "size": 1 << 60}]}
    answer = api.post("/v1/models/pull", json=huge)
    root = agent.config["models_dir"]
    assert answer.status_code == 409 and answer.headers["content-type"] == "application/json"
    assert re.match(rf"needs {1 << 60} bytes, \d+ free on {root}", answer.json()["message"])
    assert answer.json()["details"]["needed_bytes"] == 1 << 60
    blobs = Path(root) / "blobs" / "sha256"
    assert not list(blobs.glob(f"{spec['files'][0]['digest'][7:]}*"))  # nothing was fetched


@slow
def test_every_model_route_needs_a_token(agent_factory, pki, models):
    agent: AgentProcess = agent_factory()  # its own: failures count toward a lockout
    digest = models["alpha"]["digest"]
    with agent.http(pki.ca.cert_path, token=None) as anonymous:
        for method, path in [("GET", "/v1/models"), ("POST", "/v1/models/pull"),
                             ("GET", f"/v1/models/{digest}"), ("DELETE", f"/v1/models/{digest}")]:  # fmt: skip
            answer = anonymous.request(method, path, json=models["alpha"])
            assert answer.status_code == 401, (method, path)


@slow
def test_a_killed_agent_resumes_the_transfer_after_restart(agent_factory, pki, big_model, tmp_path):
    root = tmp_path / "models"
    blob = root / "blobs" / "sha256" / big_model["files"][0]["digest"][7:]
    partial = blob.with_name(blob.name + ".partial")
    first: AgentProcess = agent_factory(models_dir=str(root))
    with (
        first.http(pki.ca.cert_path) as client,
        client.stream("POST", "/v1/models/pull", json=big_model) as response,
    ):
        for line in response.iter_lines():
            event = json.loads(line) if line else {}
            if event.get("event") == "progress" and event["bytes_done"] >= 4 * MIB:
                os.kill(first.pid, signal.SIGKILL)
                break
    assert first.process is not None and first.process.wait(10) == -signal.SIGKILL
    kept = partial.stat().st_size
    assert 0 < kept < BIG and not blob.exists()

    second: AgentProcess = agent_factory(models_dir=str(root))
    with second.http(pki.ca.cert_path) as client:
        events = pull_lines(client, big_model)
    [file_event] = [event for event in events if event["event"] == "file"]
    assert file_event["status"] == "resumed" and file_event["bytes_fetched"] == BIG - kept
    assert events[0]["bytes_present"] == kept and events[-1]["event"] == "done"
    assert sha256_file(blob) == big_model["files"][0]["digest"] and not partial.exists()
    second.stop()
