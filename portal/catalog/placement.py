"""Rank hosts for a model: which GPUs have the free memory it needs, and why others do not.

A GPU's free memory is its total less the larger of what the host last reported in use and
what Spectr's own deployments on it reserved (their VRAM estimates): a model deployed a second
ago has not loaded its weights yet, and memory used by programs Spectr did not start counts too.

A runtime that shards a model (tensor parallel: vLLM, TGI) may spread it over k GPUs of one
host; each then needs (weights + KV cache) / k plus the runtime's overhead. Candidates are
ordered by whether the host already holds the model's files (nothing to fetch), then by the
fewest GPUs used, then by the most memory left over on the tightest GPU. A host whose model
disk cannot take files it does not hold yet is refused, and a runtime that needs no GPU (a
CPU build of llama.cpp, say) fits a ready host without GPUs that has room for the files.
"""

from __future__ import annotations

from dataclasses import dataclass

from portal.catalog.vram import MIB, VramEstimate


@dataclass(frozen=True)
class GpuCapacity:
    index: int
    model: str
    total_mib: int
    free_mib: int


@dataclass(frozen=True)
class HostCapacity:
    host_id: int
    name: str
    status: str
    gpus: list[GpuCapacity]
    holds_model: bool = False  # its cache has the model's latest files
    disk_free_bytes: int | None = None  # free on the disk of its model cache, when known


@dataclass(frozen=True)
class Placement:
    host_id: int
    name: str
    gpu_indexes: list[int]
    per_gpu_need_mib: int
    headroom_mib: int
    holds_model: bool = False


@dataclass(frozen=True)
class Refusal:
    host_id: int
    name: str
    reason: str


def per_gpu_need_mib(estimate: VramEstimate, gpu_count: int) -> int:
    """Memory each of `gpu_count` GPUs needs when the model is sharded over them."""
    shared = estimate.weights_bytes + estimate.kv_cache_bytes
    return -(-(shared // gpu_count + estimate.overhead_bytes) // MIB)


def place_on_host(
    host: HostCapacity,
    estimate: VramEstimate,
    multi_gpu: bool,
    needs_gpu: bool = True,
    model_bytes: int | None = None,
) -> Placement | Refusal:
    """Choose the fewest GPUs of `host` that fit the estimate, or say why none do."""
    if host.status != "ready":
        return Refusal(host.host_id, host.name, f"host is {host.status}, not ready")
    short_of_disk = (
        model_bytes and not host.holds_model and host.disk_free_bytes is not None
        and host.disk_free_bytes < model_bytes
    )  # fmt: skip
    if short_of_disk:
        reason = (
            f"its model disk has {host.disk_free_bytes} bytes free; the files need {model_bytes}"
        )
        return Refusal(host.host_id, host.name, reason)
    if not host.gpus and not needs_gpu:  # a runtime that can run on CPUs alone (llama.cpp)
        return Placement(host.host_id, host.name, [], 0, 0, host.holds_model)
    if not host.gpus:
        return Refusal(host.host_id, host.name, "host reports no GPUs")
    by_free = sorted(host.gpus, key=lambda gpu: gpu.free_mib, reverse=True)
    for count in range(1, (len(by_free) if multi_gpu else 1) + 1):
        need = per_gpu_need_mib(estimate, count)
        chosen = by_free[:count]
        if chosen[-1].free_mib >= need:
            indexes = sorted(gpu.index for gpu in chosen)
            headroom = chosen[-1].free_mib - need
            return Placement(host.host_id, host.name, indexes, need, headroom, host.holds_model)
    return Refusal(host.host_id, host.name, _shortfall(by_free, estimate, multi_gpu))


def _shortfall(by_free: list[GpuCapacity], estimate: VramEstimate, multi_gpu: bool) -> str:
    best = by_free[0]
    single = per_gpu_need_mib(estimate, 1)
    text = f"needs {single} MiB on one GPU; the freest (GPU {best.index}) has {best.free_mib} MiB"
    if multi_gpu and len(by_free) > 1:
        spread = per_gpu_need_mib(estimate, len(by_free))
        text += f"; even spread over all {len(by_free)} GPUs it needs {spread} MiB on each"
    elif not multi_gpu and len(by_free) > 1:
        text += " (this runtime does not spread a model over several GPUs)"
    return text


def rank_hosts(
    hosts: list[HostCapacity],
    estimate: VramEstimate,
    multi_gpu: bool,
    needs_gpu: bool = True,
    model_bytes: int | None = None,
) -> tuple[list[Placement], list[Refusal]]:
    """Return the hosts that fit, best first, and those that do not with the reason."""
    placements: list[Placement] = []
    refusals: list[Refusal] = []
    for host in hosts:
        outcome = place_on_host(host, estimate, multi_gpu, needs_gpu, model_bytes)
        if isinstance(outcome, Placement):
            placements.append(outcome)
        else:
            refusals.append(outcome)
    placements.sort(key=lambda p: (not p.holds_model, len(p.gpu_indexes), -p.headroom_mib, p.name))
    return placements, refusals
