"""Placement and model files: hosts holding the files come first, a model disk too small for
files a host does not hold refuses it, and a CPU-capable runtime fits hosts without GPUs."""

from __future__ import annotations

from portal.catalog.placement import GpuCapacity, HostCapacity, rank_hosts
from portal.catalog.vram import MIB, VramEstimate

GIB = 1024 * MIB
ESTIMATE = VramEstimate(8 * GIB, 1 * GIB, 1 * GIB, 4096, 1)  # 10 GiB on one GPU


def gpu_host(host_id: int, name: str, free_gib: int, **extra: object) -> HostCapacity:
    gpus = [GpuCapacity(0, "H100", 80 * 1024, free_gib * 1024)]
    return HostCapacity(host_id, name, "ready", gpus, **extra)  # type: ignore[arg-type]


def test_a_host_that_holds_the_files_comes_first_even_with_less_headroom() -> None:
    roomy = gpu_host(1, "roomy", 80)
    holder = gpu_host(2, "holder", 20, holds_model=True)

    placed, refused = rank_hosts([roomy, holder], ESTIMATE, multi_gpu=False)

    assert [p.name for p in placed] == ["holder", "roomy"] and refused == []
    assert placed[0].holds_model and not placed[1].holds_model


def test_a_model_disk_too_small_refuses_the_host_unless_it_holds_the_files() -> None:
    small_disk = gpu_host(1, "small-disk", 80, disk_free_bytes=5 * GIB)
    holder = gpu_host(2, "holder", 80, disk_free_bytes=1 * GIB, holds_model=True)
    unknown = gpu_host(3, "unknown-disk", 80)  # no facts about its disk: not refused for it

    placed, refused = rank_hosts(
        [small_disk, holder, unknown], ESTIMATE, multi_gpu=False, model_bytes=16 * GIB
    )

    assert [p.name for p in placed] == ["holder", "unknown-disk"]
    assert [r.name for r in refused] == ["small-disk"]
    assert refused[0].reason == (
        f"its model disk has {5 * GIB} bytes free; the files need {16 * GIB}"
    )


def test_a_runtime_that_runs_on_cpus_fits_a_host_without_gpus() -> None:
    cpu_only = HostCapacity(1, "cpu-only", "ready", [])

    placed, _ = rank_hosts([cpu_only], ESTIMATE, multi_gpu=False, needs_gpu=False)
    assert [(p.name, p.gpu_indexes) for p in placed] == [("cpu-only", [])]
    _, refused = rank_hosts([cpu_only], ESTIMATE, multi_gpu=False, needs_gpu=True)
    assert refused[0].reason == "host reports no GPUs"
