"""Value types the ContainerEngine contract takes and returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

StreamName = Literal["stdout", "stderr"]


@dataclass(frozen=True)
class PortBinding:
    """Publish container_port on host_ip:host_port (None lets the engine pick a port)."""

    container_port: int
    protocol: str = "tcp"
    host_port: int | None = None
    host_ip: str = "127.0.0.1"


@dataclass(frozen=True)
class VolumeMount:
    """Mount a host path (bind) or a named volume at target."""

    source: str
    target: str
    read_only: bool = False
    type: Literal["bind", "volume"] | None = None  # None: bind for /paths, volume otherwise


@dataclass(frozen=True)
class GpuRequest:
    """Ask for GPUs: count=-1 for all, or the given device ids (indexes or UUIDs)."""

    count: int = -1
    device_ids: list[str] | None = None
    driver: str = "nvidia"


@dataclass(frozen=True)
class RestartPolicy:
    """Docker restart policy: no, always, unless-stopped or on-failure."""

    name: str = "no"
    maximum_retry_count: int = 0


@dataclass(frozen=True)
class ContainerSpec:
    """What to run; the same fields as the agent's POST /v1/containers body."""

    image: str
    name: str | None = None
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    ports: list[PortBinding] = field(default_factory=list)
    volumes: list[VolumeMount] = field(default_factory=list)
    restart_policy: RestartPolicy | None = None
    cpus: float | None = None
    memory_bytes: int | None = None
    gpus: GpuRequest | None = None
    user: str | None = None
    working_dir: str | None = None
    network: str | None = None

    def to_agent_body(self) -> dict[str, Any]:
        """Return the agent API's JSON spec (unset fields left out)."""
        body = asdict(self)
        if self.gpus is not None and self.gpus.device_ids is not None:
            body["gpus"] = {"device_ids": self.gpus.device_ids, "driver": self.gpus.driver}
        for volume in body["volumes"]:
            if volume["type"] is None:
                del volume["type"]
        return {key: value for key, value in body.items() if value not in (None, [], {})}


@dataclass(frozen=True)
class MountInfo:
    """A mount of a container: a named volume (name set), a bind or a tmpfs."""

    type: str
    destination: str
    source: str | None = None
    name: str | None = None
    read_only: bool = False


@dataclass(frozen=True)
class NetworkAttachment:
    """A network a container is connected to, and its address there."""

    name: str
    network_id: str | None = None
    ip_address: str | None = None


@dataclass(frozen=True)
class ContainerInfo:
    """A container as the portal sees it; detail fields are filled by inspect.

    Listing fills mounts and networks too (the engine's list carries them), so a host's
    volumes and networks can be told in use from one list call.
    """

    id: str
    name: str
    image: str | None
    state: str | None
    labels: dict[str, str]
    created: str | None = None
    image_id: str | None = None
    status: str | None = None
    ports: list[PortBinding] = field(default_factory=list)
    exit_code: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    restart_count: int = 0
    health: str | None = None
    tty: bool = False
    mounts: list[MountInfo] = field(default_factory=list)
    networks: list[NetworkAttachment] = field(default_factory=list)
    command: list[str] | None = None  # inspect only, like the fields below
    entrypoint: list[str] | None = None
    env: list[str] = field(default_factory=list)  # KEY=VALUE as the engine has it: mask to show
    restart_policy: str | None = None
    gpus: GpuRequest | None = None  # the GPUs it asks for (--gpus or the nvidia runtime)


@dataclass(frozen=True)
class ImageInfo:
    """A local image."""

    id: str
    tags: list[str]
    digests: list[str] = field(default_factory=list)
    size: int | None = None
    created: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VolumeInfo:
    """A named (or anonymous) volume; size is None where the engine did not measure it."""

    name: str
    driver: str
    mountpoint: str | None = None
    created: str | None = None
    scope: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    size: int | None = None


@dataclass(frozen=True)
class NetworkInfo:
    """A network of the engine; the engine's own bridge, host and none are built in."""

    id: str
    name: str
    driver: str
    scope: str | None = None
    created: str | None = None
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    subnets: list[str] = field(default_factory=list)

    @property
    def builtin(self) -> bool:
        """Whether this is one of the networks every engine has and none can remove."""
        return self.name in ("bridge", "host", "none")


@dataclass(frozen=True)
class PruneResult:
    """What a prune removed: names or ids, and the bytes it freed."""

    deleted: list[str]
    space_reclaimed: int = 0


@dataclass(frozen=True)
class PullProgress:
    """One progress event of an image pull."""

    status: str
    id: str | None = None
    current: int | None = None
    total: int | None = None


@dataclass(frozen=True)
class ContainerStats:
    """One resource sample."""

    cpu_percent: float
    memory_usage_bytes: int | None
    memory_limit_bytes: int | None
    pids: int | None = None
    network_rx_bytes: int | None = None  # counters since the container started
    network_tx_bytes: int | None = None


@dataclass(frozen=True)
class LogChunk:
    """One log frame: a line (or a partial one) from stdout or stderr."""

    stream: StreamName
    data: str
    ts: str | None = None


@dataclass(frozen=True)
class ExecChunk:
    """Output of a running exec."""

    stream: StreamName
    data: str


@dataclass(frozen=True)
class ExecExit:
    """The end of an exec: its exit code (None when it timed out)."""

    exit_code: int | None
    timed_out: bool = False


@dataclass(frozen=True)
class ExecResult:
    """A finished exec with its collected output."""

    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool = False


@dataclass(frozen=True)
class EngineHealth:
    """Whether the engine (and the agent in between, if any) answers."""

    reachable: bool
    engine_version: str | None = None
    agent_version: str | None = None
    error: str | None = None
    # Set when the agent speaks a contract this portal does not (portal/engines/contracts.py).
    contract_problem: str | None = None
