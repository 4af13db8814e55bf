"""Putting a ~1 GiB model on hosts: Spectr's agents fetching from its registry, against scp.

    .venv/bin/python bench/models_distribute.py [--size-mib 1024] [--hosts 4] [--rounds 2]

Everything is real and local: a docker-registry (TLS with a CA made for this run, htpasswd)
listening on the docker0 bridge gateway, a model pushed into it as an OCI artifact in the
portal's format (4 shards of random bytes plus small config/tokenizer files, written in 1 MiB
chunks), and N SSH test hosts (tests/support/testhosts.py, plain image) each running the real
spectr-agent zipapp (built by the collection's script) with its own TLS certificate, token and
models_dir. The bench drives the agents with the portal's own client (AgentEngine.pull_model),
several hosts at a time like the portal's `model.distribute` fan-out; each agent fetches the
blobs itself from the registry, verifying every sha256, so the bytes move by Spectr's code.

Steps, in one run: (a) baseline, scp of the same files to one host (the host's sshd, key
auth, straight to the container's bridge address); (b) the model pulled into one host's cache
((a) and (b) alternate for --rounds rounds and the best of each counts);
(c) the same model pulled into N hosts at once; (d) a second revision that differs in one small
file, pulled onto a host holding the first; (e) re-pulls of a complete model (sha256 checked,
then sizes only). MB is 10^6 bytes. Cores are CPU seconds per wall second of the registry,
the agents and the whole machine (2 shared cores: other work shows in "machine").
Goals: one host at least as fast as scp; N hosts <= 2x one host; the second model sends only
what differs. A missed goal prints MISSED; the exit status stays 0.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import ipaddress
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    CLOCK_TICKS,
    machine_busy_cpu,
    print_table,
    process_tree_cpu,
    verdict,
)
from bench._common import _proc_table as proc_table

AGENT_PORT = 7443
MODELS_DIR = "/var/lib/spectr/models"
CHUNK = 1024 * 1024
SHARDS = 4
USER, PASSWORD = "bench", "bench-" + secrets.token_hex(8)
ZIPAPP_SCRIPT = "ansible_collections/spectr/core/scripts/build_agent_zipapp.py"
ROOT = Path(__file__).resolve().parent.parent


# -- the model and the registry -----------------------------------------------------------------


@dataclass
class ModelFiles:
    """Files on local disk with their sha256 and size, in manifest order."""

    folder: Path
    files: dict[str, tuple[str, int]] = field(default_factory=dict)  # path -> (digest, size)

    def write_random(self, path: str, size: int) -> None:
        """Write `size` random bytes in 1 MiB chunks, hashing as it goes."""
        hasher, left = hashlib.sha256(), size
        with (self.folder / path).open("wb") as handle:
            while left:
                chunk = os.urandom(min(CHUNK, left))
                hasher.update(chunk)
                handle.write(chunk)
                left -= len(chunk)
        self.files[path] = ("sha256:" + hasher.hexdigest(), size)

    def write_bytes(self, path: str, data: bytes) -> None:
        (self.folder / path).write_bytes(data)
        self.files[path] = ("sha256:" + hashlib.sha256(data).hexdigest(), len(data))

    @property
    def size(self) -> int:
        return sum(size for _, size in self.files.values())


def make_models(folder: Path, size_mib: int) -> tuple[ModelFiles, ModelFiles]:
    """Model A (shards + small files) and revision B: the same files but another config.json."""
    first, second = ModelFiles(folder / "r1"), ModelFiles(folder / "r2")
    for model in (first, second):
        model.folder.mkdir(parents=True)
    tokenizer = os.urandom(1024 * 1024).hex().encode()  # 2 MiB of text, like a tokenizer.json
    small = len(tokenizer) + 4096
    shard = max(CHUNK, (size_mib * CHUNK - small) // SHARDS)
    for index in range(1, SHARDS + 1):
        first.write_random(f"model-{index:05d}-of-{SHARDS:05d}.safetensors", shard)
    first.write_bytes("tokenizer.json", tokenizer)
    first.write_bytes("generation_config.json", b'{"max_new_tokens": 512}\n')
    config = {"architectures": ["BenchForCausalLM"], "hidden_size": 4096, "torch_dtype": "bfloat16"}
    first.write_bytes("config.json", json.dumps(config).encode())
    for path in first.files:
        if path != "config.json":  # a hard link: the second revision holds the same bytes
            os.link(first.folder / path, second.folder / path)
            second.files[path] = first.files[path]
    second.write_bytes("config.json", json.dumps({**config, "rope_theta": 1e6}).encode())
    return first, second


def issue_registry_certificate(ca: Any, addresses: list[str]) -> tuple[str, str]:
    """A server certificate for the registry with these IP addresses; (cert PEM, key PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    san = [x509.IPAddress(ipaddress.ip_address(address)) for address in addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench-registry")]))
        .issuer_name(ca.cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .sign(ca.key, hashes.SHA256())
    )  # fmt: skip
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def upload_file(client: httpx.Client, repository: str, path: Path, digest: str) -> None:
    """Stream one file into the registry as a blob, unless it is there already."""
    if client.head(f"/v2/{repository}/blobs/{digest}").status_code == 200:
        return
    start = client.post(f"/v2/{repository}/blobs/uploads/")
    start.raise_for_status()
    location = httpx.URL(start.headers["location"]).copy_merge_params({"digest": digest})
    with path.open("rb") as handle:  # httpx reads it in chunks, with a Content-Length
        client.put(location, content=handle).raise_for_status()


def push_model(client: httpx.Client, repository: str, tag: str, model: ModelFiles) -> str:
    """Push a model as the portal's OCI artifact (HELPERS-CONTRACT.md); return its digest."""
    from tests.collection import registry_seed as seed

    for path, (digest, _) in model.files.items():
        upload_file(client, repository, model.folder / path, digest)
    listed = [{"path": p, "digest": d, "size": s} for p, (d, s) in model.files.items()]
    config = json.dumps({"format": "safetensors", "facts": {}, "files": listed}).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    if client.head(f"/v2/{repository}/blobs/{config_digest}").status_code != 200:
        seed.upload_blob(client, repository, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": seed.OCI_MANIFEST_TYPE,
        "artifactType": seed.MODEL_ARTIFACT_TYPE,
        "config": {"mediaType": seed.MODEL_CONFIG_TYPE, "digest": config_digest,
                   "size": len(config)},
        "layers": [{"mediaType": seed.MODEL_FILE_TYPE, "digest": d, "size": s,
                    "annotations": {seed.TITLE: p}} for p, (d, s) in model.files.items()],
    }).encode()  # fmt: skip
    answer = client.put(f"/v2/{repository}/manifests/{tag}", content=manifest,
                        headers={"Content-Type": seed.OCI_MANIFEST_TYPE})  # fmt: skip
    if answer.status_code != 201:
        raise SystemExit(f"the registry refused the manifest: {answer.status_code} {answer.text}")
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def pull_spec(registry: Any, repository: str, digest: str, model: ModelFiles) -> dict[str, Any]:
    """What the portal sends an agent (portal/artifacts/distribution.py pull_spec)."""
    return {
        "digest": digest, "name": repository,
        "files": [{"path": p, "digest": d, "size": s} for p, (d, s) in model.files.items()],
        "source": {"url": registry.url, "repository": repository, "username": registry.user,
                   "password": registry.password, "ca_pem": registry.ca_pem},
        "verify": True,
    }  # fmt: skip


# -- hosts and their agents ---------------------------------------------------------------------


@dataclass
class BenchHost:
    """A test host, its agent (a portal AgentEngine) and the agent's process id on this machine."""

    host: Any
    address: str  # the container's address on the docker bridge
    engine: Any = None
    agent_pid: int | None = None


def docker(*args: str, timeout: float = 300) -> str:
    from tests.support.testhosts import run_docker

    return run_docker(*args, timeout=timeout)


def bridge_gateway() -> str:
    """The docker0 bridge gateway: the address containers reach this machine on."""
    out = docker("network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Gateway}}")
    if out.strip():
        return out.strip()
    # The engine leaves Gateway empty when it picked the default: ask the bridge itself.
    shown = subprocess.run(["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True,
                           text=True, check=True).stdout.split()  # fmt: skip
    return shown[shown.index("inet") + 1].split("/")[0]


def start_hosts(count: int, run_id: str, key_pair: Any) -> list[BenchHost]:
    """Start `count` plain SSH test hosts at once, the agent's port published on 127.0.0.1."""
    from tests.support.testhosts import host_image, start_test_host

    host_image(False)  # built (or found) once, before the threads ask for it

    def start(index: int) -> BenchHost:
        host = start_test_host(f"bench-models-{run_id}-{index}", extra_ports=(AGENT_PORT,),
                               key_pair=key_pair)  # fmt: skip
        template = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
        return BenchHost(host, docker("inspect", "-f", template, host.container_name).strip())

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(start, range(count)))


def build_zipapp(folder: Path) -> Path:
    """The agent zipapp, built the way the collection README tells ops to."""
    output = folder / "spectr-agent.pyz"
    subprocess.run([sys.executable, str(ROOT / ZIPAPP_SCRIPT), "--source", str(ROOT),
                    "--output", str(output)], check=True, capture_output=True, timeout=300)  # fmt: skip
    return output


def install_agent(bench_host: BenchHost, folder: Path, ca: Any, cert: tuple[str, str]) -> None:
    """Copy the zipapp, certificate and config in, start the agent, and connect to it."""
    from agent.auth import hash_token
    from portal.engines.agent_client import AgentEngine

    name, token = bench_host.host.container_name, secrets.token_urlsafe(24)
    config = {"tls_cert": "/etc/spectr-agent/agent.crt", "tls_key": "/etc/spectr-agent/agent.key",
              "token_sha256": hash_token(token), "listen_host": "0.0.0.0",
              "listen_port": AGENT_PORT, "models_dir": MODELS_DIR, "log_level": "WARNING"}  # fmt: skip
    config_path = folder / f"agent-{name}.json"
    config_path.write_text(json.dumps(config))
    docker("exec", name, "mkdir", "-p", "/opt/spectr-agent", "/etc/spectr-agent")
    for source, target in ((folder / "spectr-agent.pyz", "/opt/spectr-agent/spectr-agent.pyz"),
                           (Path(cert[0]), config["tls_cert"]), (Path(cert[1]), config["tls_key"]),
                           (config_path, "/etc/spectr-agent/agent.json")):  # fmt: skip
        docker("cp", str(source), f"{name}:{target}")
    command = ("exec python3 /opt/spectr-agent/spectr-agent.pyz --config "
               "/etc/spectr-agent/agent.json >>/var/log/spectr-agent.log 2>&1")  # fmt: skip
    docker("exec", "-d", name, "sh", "-c", command)
    url = f"https://127.0.0.1:{bench_host.host.published_ports[AGENT_PORT]}"
    wait_for_agent(bench_host, url, token, ca.cert_path)
    bench_host.engine = AgentEngine(url, token, ca.cert_path)
    bench_host.agent_pid = agent_pid(name)


def wait_for_agent(bench_host: BenchHost, url: str, token: str, ca_path: str) -> None:
    """Poll GET /v1/health (plain httpx: the engine's breaker must not see start-up refusals)."""
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v1/health", headers=headers, verify=ca_path, timeout=2).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    log = bench_host.host.exec("sh", "-c", "tail -20 /var/log/spectr-agent.log || true")
    raise SystemExit(f"the agent on {bench_host.host.container_name} did not answer:\n{log}")


def agent_pid(container: str) -> int | None:
    """The agent's process id as this machine's /proc sees it (None when it cannot)."""
    for line in docker("top", container, "-eo", "pid,args").splitlines()[1:]:
        pid, _, args = line.strip().partition(" ")
        if "spectr-agent.pyz" in args and "sh -c" not in args and Path(f"/proc/{pid}").exists():
            return int(pid)
    return None


# -- measuring ----------------------------------------------------------------------------------


@dataclass
class Step:
    """One measured step: what moved, how long it took, and the cores it kept busy."""

    label: str
    seconds: float
    moved: int  # bytes sent (scp), fetched (pulls) or checked (a verifying re-pull)
    fetched: int | None
    cores: dict[str, float]
    outcomes: list[dict[str, Any]] = field(default_factory=list)


class CoreMeter:
    """CPU seconds per wall second over a block: registry, agents, ssh (scp, ssh, sshd), machine.

    sshd's per-connection processes have exited by the end: they are read from the sshd
    listener's reaped-children times, and scp/ssh from this process's reaped children.
    """

    GROUPS = ("registry", "agents", "ssh")

    def __init__(self, registry_pid: int, agent_pids: list[int], sshd_pid: int | None) -> None:
        self.registry_pid, self.agent_pids, self.sshd_pid = registry_pid, agent_pids, sshd_pid
        self.start = self._read()

    def _read(self) -> dict[str, float]:
        table = proc_table()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "registry": process_tree_cpu([self.registry_pid], table),
            "agents": process_tree_cpu(self.agent_pids, table),
            "ssh": cpu_with_reaped(self.sshd_pid) + children.ru_utime + children.ru_stime,
            "machine": machine_busy_cpu(),
            "wall": time.monotonic(),
        }

    def cores(self) -> dict[str, float]:
        """Cores busy since creation, by group."""
        end = self._read()
        wall = max(end["wall"] - self.start["wall"], 1e-9)
        return {k: (end[k] - self.start[k]) / wall for k in (*self.GROUPS, "machine")}


def cpu_with_reaped(pid: int | None) -> float:
    """CPU seconds of a process plus those of its children it has waited for."""
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def sshd_pid(container: str) -> int | None:
    """The sshd listener of a host, as this machine's /proc sees it (None when it cannot)."""
    for line in docker("top", container, "-eo", "pid,args").splitlines()[1:]:
        pid, _, args = line.strip().partition(" ")
        if "[listener]" in args and Path(f"/proc/{pid}").exists():
            return int(pid)
    return None


def scp_baseline(targets: list[BenchHost], model: ModelFiles, meter: CoreMeter) -> Step:
    """scp the model's files to the hosts (all at once), as an operator would without Spectr."""
    from tests.support.testhosts import ssh_options

    files = [str(model.folder / path) for path in model.files]
    for target in targets:
        target.host.ssh("mkdir", "-p", "/root/scp-copy")
    commands = [
        ["scp", "-q", *ssh_options(), "-i", str(target.host.private_key_path), "-P", "22",
         *files, f"root@{target.address}:/root/scp-copy/"]
        for target in targets
    ]  # fmt: skip
    started = time.perf_counter()
    running = [subprocess.Popen(command) for command in commands]
    if any(process.wait(timeout=1800) for process in running):
        raise SystemExit("scp failed")
    seconds = time.perf_counter() - started
    label = (
        "scp to 1 host (baseline)" if len(targets) == 1 else f"scp to {len(targets)} hosts at once"
    )
    step = Step(label, seconds, model.size * len(targets), None, meter.cores())
    for target in targets:
        target.host.ssh("rm", "-rf", "/root/scp-copy")
    return step


def pull_on(label: str, hosts: list[BenchHost], spec: dict[str, Any], parallel: int,
            meter: CoreMeter) -> Step:  # fmt: skip
    """Have each host's agent pull the model, `parallel` hosts at a time; time the whole."""

    def pull(bench_host: BenchHost) -> dict[str, Any]:
        files: dict[str, str] = {}

        def follow(event: dict[str, Any]) -> None:
            if event.get("event") == "file":
                files[event["path"]] = event["status"]

        started = time.perf_counter()
        done = bench_host.engine.pull_model(spec, follow)
        return {**done, "files": files, "wall": time.perf_counter() - started}

    pool = ThreadPoolExecutor(max(1, min(parallel, len(hosts))), thread_name_prefix="model-pull")
    try:
        started = time.perf_counter()
        outcomes = list(pool.map(pull, hosts))
        seconds = time.perf_counter() - started
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    fetched = sum(int(o["bytes_fetched"]) for o in outcomes)
    return Step(label, seconds, fetched, fetched, meter.cores(), outcomes)


def check_held(hosts: list[BenchHost], digest: str) -> None:
    """Every host's agent lists the model as complete."""
    for bench_host in hosts:
        held = {m["digest"] for m in bench_host.engine.model_cache()["models"]}
        if digest not in held:
            raise SystemExit(f"{bench_host.host.container_name} does not list {digest}")


def measure(hosts: list[BenchHost], registry: Any, models: tuple[ModelFiles, ModelFiles],
            specs: tuple[dict[str, Any], dict[str, Any]], parallel: int,
            rounds: int) -> list[Step]:  # fmt: skip
    """Run steps (a) to (e) and return them in order."""
    first, _ = models
    spec_a, spec_b = specs
    pids = [h.agent_pid for h in hosts if h.agent_pid is not None]

    sshd = sshd_pid(hosts[0].host.container_name)

    def meter() -> CoreMeter:
        return CoreMeter(registry.process.pid, pids, sshd)

    one = hosts[0]
    scps, pulls = [], []
    for _ in range(rounds):  # alternated, the best of each kept: noise hits both alike
        scps.append(scp_baseline([one], first, meter()))
        pulls.append(pull_on("Spectr pull, 1 host", [one], spec_a, parallel, meter()))
        one.engine.remove_model(spec_a["digest"])  # each pull (and the fan-out) starts empty
    print("rounds: scp " + ", ".join(f"{s.seconds:.2f}" for s in scps) + " s; Spectr 1 host "
          + ", ".join(f"{s.seconds:.2f}" for s in pulls) + " s (best of each in the table)")  # fmt: skip
    steps = [min(scps, key=lambda s: s.seconds), min(pulls, key=lambda s: s.seconds)]
    steps.append(pull_on(f"Spectr pull, {len(hosts)} hosts at once", hosts, spec_a, parallel,
                         meter()))  # fmt: skip
    check_held(hosts, spec_a["digest"])
    steps.append(pull_on("2nd model (1 small file differs), 1 host", [one], spec_b, parallel,
                         meter()))  # fmt: skip
    steps.append(pull_on("re-pull complete model, sha256 check", [one], spec_a, parallel,
                         meter()))  # fmt: skip
    steps[-1].moved = first.size  # nothing fetched; every byte read and hashed
    quick = {**spec_a, "verify": False}
    steps.append(pull_on("re-pull complete model, sizes only", [one], quick, parallel, meter()))
    if len(hosts) > 1:  # what the same fan-out costs without Spectr, on the same machine
        steps.append(scp_baseline(hosts, first, meter()))
    return steps


# -- the report ---------------------------------------------------------------------------------


def cpu_per_gb(step: Step) -> float | str:
    """CPU seconds of the bench's processes per GB moved (less noisy than time when shared)."""
    if step.moved < 1e6:
        return "-"
    busy = sum(step.cores[group] for group in CoreMeter.GROUPS) * step.seconds
    return busy / (step.moved / 1e9)


def report(steps: list[Step], models: tuple[ModelFiles, ModelFiles], hosts: list[BenchHost],
           parallel: int) -> None:  # fmt: skip
    """Print the table, then the goals with met / MISSED."""
    first, second = models
    scp, one, fan, diff, verify = steps[0], steps[1], steps[2], steps[3], steps[4]
    rows = [
        [s.label, s.seconds, s.moved / 1e6 / s.seconds if s.moved >= 1e6 else "-",
         "-" if s.fetched is None else s.fetched, s.seconds / scp.seconds,
         *(s.cores[group] for group in (*CoreMeter.GROUPS, "machine")), cpu_per_gb(s)]
        for s in steps
    ]  # fmt: skip
    print(f"\nmodel: {len(first.files)} files, {first.size:,} bytes ({first.size / 2**20:.0f} MiB);"
          f" {len(hosts)} hosts, {parallel} at a time")  # fmt: skip
    print_table(["step", "seconds", "MB/s", "bytes fetched", "time / scp", "cores: registry",
                 "agents", "ssh", "machine", "CPU s/GB"], rows)  # fmt: skip
    print(f"(MB/s and CPU s/GB: per byte sent, fetched, or checked by the sha256 re-pull; "
          f"{len(hosts)} hosts count every host's bytes. CPU s/GB: registry + agents + ssh.)")  # fmt: skip
    walls = ", ".join(f"{o['wall']:.1f}" for o in fan.outcomes)
    print(f"per-host times in the {len(hosts)}-host pull: {walls} s")
    differs = [p for p in second.files if second.files[p] != first.files.get(p)]
    expected = sum(second.files[p][1] for p in differs)
    fetched_paths = sorted(
        p for p, status in diff.outcomes[0]["files"].items() if status != "present"
    )
    shared = next(p for p in second.files if p not in differs)
    blob = f"{MODELS_DIR}/blobs/sha256/{second.files[shared][0].split(':', 1)[1]}"
    links = hosts[0].host.exec("stat", "-c", "%h", blob).strip()
    print(f"2nd model: files fetched {fetched_paths}, {diff.fetched} bytes; differing "
          f"{differs}, {expected} bytes; {shared} stored once, {links} links "
          "(blob + both model folders)")  # fmt: skip
    print("\ngoals:")
    print(f"  Spectr 1 host at least as fast as scp to 1 host: {one.seconds:.2f} s vs "
          f"{scp.seconds:.2f} s (ratio {one.seconds / scp.seconds:.2f}): "
          f"{verdict(one.seconds <= scp.seconds)}")  # fmt: skip
    print(f"  {len(hosts)} hosts <= 2x one host: {fan.seconds:.2f} s vs {one.seconds:.2f} s "
          f"(ratio {fan.seconds / one.seconds:.2f}): {verdict(fan.seconds <= 2 * one.seconds)}"
          f" (the hosts, the registry and the bench share this machine's {os.cpu_count()} cores;"
          f" busy {fan.cores['machine']:.2f} during the fan-out)")  # fmt: skip
    if len(steps) > 6:
        fan_scp = steps[6]
        print(f"  {len(hosts)} hosts: Spectr no slower than scp to {len(hosts)} hosts at once: "
              f"{fan.seconds:.2f} s vs {fan_scp.seconds:.2f} s (ratio "
              f"{fan.seconds / fan_scp.seconds:.2f}): {verdict(fan.seconds <= fan_scp.seconds)}")  # fmt: skip
    print(f"  2nd model sends only what differs: {diff.fetched} bytes fetched, {expected} differ: "
          f"{verdict(diff.fetched == expected and fetched_paths == sorted(differs))}")  # fmt: skip
    print(
        f"  re-pull of a complete model fetches nothing: {verify.fetched} + "
        f"{steps[5].fetched} bytes: {verdict(verify.fetched == 0 and steps[5].fetched == 0)}"
    )


# -- the run ------------------------------------------------------------------------------------


def remove_containers(run_id: str) -> None:
    """Remove every container of this run (their names carry the run's random id)."""
    prefix = f"spectr-test-bench-models-{run_id}-"
    names = docker("ps", "-a", "--filter", f"name={prefix}", "--format", "{{.Names}}").split()
    for name in names:
        if name.startswith(prefix):
            subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, check=False)


def on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # runs the finally blocks: containers, registry, files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="model size (MiB)")
    parser.add_argument("--hosts", type=int, default=4, help="hosts of the fan-out step")
    parser.add_argument("--parallel", type=int, default=None,
                        help="hosts pulling at once (default: the portal's, 4)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2,
                        help="scp / 1-host pull rounds, alternated; the best of each counts")  # fmt: skip
    args = parser.parse_args()
    from portal.config import DEFAULTS

    parallel = args.parallel or int(DEFAULTS["MODEL_DISTRIBUTION_PARALLEL"])
    signal.signal(signal.SIGTERM, on_sigterm)
    run_id = secrets.token_hex(3)
    folder = Path(tempfile.mkdtemp(prefix="spectr-bench-models-"))
    registry = None
    try:
        from agent.tests.harness import CertificateAuthority

        ca = CertificateAuthority.create("bench", folder)
        registry = start_bench_registry(folder, ca)
        models, specs = push_models(registry, folder / "model", args.size_mib)
        hosts = prepare_hosts(folder, ca, args.hosts, run_id)
        steps = measure(hosts, registry, models, specs, parallel, max(1, args.rounds))
        report(steps, models, hosts, parallel)
    finally:
        remove_containers(run_id)
        if registry is not None:
            registry.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def start_bench_registry(folder: Path, ca: Any) -> Any:
    """The registry on the bridge gateway (where hosts reach it), TLS from the run's CA."""
    from agent.tests.registry_process import start_registry

    gateway = bridge_gateway()
    cert_pem, key_pem = issue_registry_certificate(ca, [gateway, "127.0.0.1"])
    ca_pem = Path(ca.cert_path).read_text()
    return start_registry(folder / "registry", cert_pem, key_pem, ca_pem, USER, PASSWORD,
                          listen=gateway)  # fmt: skip


def push_models(registry: Any, folder: Path, size_mib: int) -> tuple[tuple, tuple]:
    """Write both revisions and push them; return them and their pull specs."""
    started = time.perf_counter()
    models = make_models(folder, size_mib)
    print(
        f"model written: {models[0].size / 2**20:.0f} MiB in {time.perf_counter() - started:.1f} s"
    )
    repository = "models/bench-llm"
    started = time.perf_counter()
    with registry.http() as client:
        client.timeout = httpx.Timeout(600, connect=10)
        digests = [push_model(client, repository, f"r{i + 1}", m) for i, m in enumerate(models)]
    print(
        f"pushed to {registry.url}/{repository} (r1, r2) in {time.perf_counter() - started:.1f} s"
    )
    specs = tuple(
        pull_spec(registry, repository, d, m) for d, m in zip(digests, models, strict=True)
    )
    return models, specs


def prepare_hosts(folder: Path, ca: Any, count: int, run_id: str) -> list[BenchHost]:
    """Start the test hosts and a real spectr-agent in each."""
    from tests.support.testhosts import SSHKeyPair

    started = time.perf_counter()
    build_zipapp(folder)
    cert = ca.issue("agent", server=True)  # SAN 127.0.0.1: reached through published ports
    hosts = start_hosts(count, run_id, SSHKeyPair.generate(folder))
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(lambda h: install_agent(h, folder, ca, cert), hosts))
    print(f"{count} hosts with agents up in {time.perf_counter() - started:.1f} s "
          f"({sum(h.agent_pid is not None for h in hosts)} agent pids visible for CPU figures)")  # fmt: skip
    return hosts


if __name__ == "__main__":
    sys.exit(main())
