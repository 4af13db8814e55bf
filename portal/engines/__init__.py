"""ContainerEngine contract with LocalDockerEngine and AgentEngine; no Flask in here."""

from portal.engines.agent_client import AgentEngine
from portal.engines.base import ContainerEngine
from portal.engines.errors import BadRequest, Conflict, EngineError, NotFound, Unavailable
from portal.engines.local import LocalDockerEngine
from portal.engines.models import (
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    EngineHealth,
    ExecChunk,
    ExecExit,
    ExecResult,
    GpuRequest,
    ImageInfo,
    LogChunk,
    MountInfo,
    NetworkAttachment,
    NetworkInfo,
    PortBinding,
    PruneResult,
    PullProgress,
    RestartPolicy,
    VolumeInfo,
    VolumeMount,
)
from portal.engines.resilience import CircuitBreaker, RetryPolicy, breaker_for

__all__ = [
    "AgentEngine",
    "BadRequest",
    "CircuitBreaker",
    "Conflict",
    "ContainerEngine",
    "ContainerInfo",
    "ContainerSpec",
    "ContainerStats",
    "EngineError",
    "EngineHealth",
    "ExecChunk",
    "ExecExit",
    "ExecResult",
    "GpuRequest",
    "ImageInfo",
    "LocalDockerEngine",
    "LogChunk",
    "MountInfo",
    "NetworkAttachment",
    "NetworkInfo",
    "NotFound",
    "PortBinding",
    "PruneResult",
    "PullProgress",
    "RestartPolicy",
    "RetryPolicy",
    "Unavailable",
    "VolumeInfo",
    "VolumeMount",
    "breaker_for",
]
