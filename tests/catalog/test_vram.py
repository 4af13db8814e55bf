"""The VRAM estimate against figures published for known models.

Sources:
- NVIDIA, "Mastering LLM Techniques: Inference Optimization" (2023): Llama 2 7B in 16-bit
  precision, batch 1, 4096 tokens: KV cache "~2 GB" (1 x 4096 x 2 x 32 x 4096 x 2 bytes);
  the weights of a 7B model in fp16 are ~14 GB (6.74 B parameters x 2 bytes = 13.5 GB).
- Hugging Face, "Llama 3.1 - 405B, 70B & 8B with multilinguality and long context" (2024):
  weights 8B: FP16 16 GB, FP8 8 GB, INT4 4 GB; 70B: 140 / 70 / 35 GB; KV cache (FP16) at 128k
  tokens: 8B 15.62 GB, 70B 39.06 GB (binary gigabytes).
"""

from __future__ import annotations

import pytest

from portal.catalog.vram import MIB, ModelShape, estimate_vram, kv_cache_bytes, weights_bytes

GB = 1e9
GIB = 1024**3
LLAMA2_7B = dict(parameters_billions=6.74, num_layers=32, num_kv_heads=32, head_dim=128)
LLAMA31_8B = dict(parameters_billions=8.03, num_layers=32, num_kv_heads=8, head_dim=128)
LLAMA31_70B = dict(parameters_billions=70.6, num_layers=80, num_kv_heads=8, head_dim=128)


def test_llama2_7b_kv_cache_matches_nvidia_figure() -> None:
    shape = ModelShape(quantization="fp16", **LLAMA2_7B)
    assert kv_cache_bytes(shape, 4096) == 4096 * 2 * 32 * 4096 * 2  # NVIDIA's own product
    assert kv_cache_bytes(shape, 4096) / GIB == pytest.approx(2.0, rel=0.01)


def test_llama2_7b_fp16_weights_match_published_size() -> None:
    assert weights_bytes(ModelShape(quantization="fp16", **LLAMA2_7B)) / GB == pytest.approx(
        13.5, rel=0.01
    )


@pytest.mark.parametrize(("quantization", "published_gb"), [("bf16", 16), ("fp8", 8), ("int4", 4)])
def test_llama31_8b_weights_match_hugging_face_table(
    quantization: str, published_gb: float
) -> None:
    shape = ModelShape(quantization=quantization, **LLAMA31_8B)
    assert weights_bytes(shape) / GB == pytest.approx(published_gb, rel=0.02)


@pytest.mark.parametrize(
    ("quantization", "published_gb"), [("bf16", 140), ("fp8", 70), ("int4", 35)]
)
def test_llama31_70b_weights_match_hugging_face_table(
    quantization: str, published_gb: float
) -> None:
    shape = ModelShape(quantization=quantization, **LLAMA31_70B)
    assert weights_bytes(shape) / GB == pytest.approx(published_gb, rel=0.02)


@pytest.mark.parametrize(("shape", "published_gib"), [(LLAMA31_8B, 15.62), (LLAMA31_70B, 39.06)])
def test_llama31_kv_cache_at_128k_matches_hugging_face_table(
    shape: dict, published_gib: float
) -> None:
    assert kv_cache_bytes(ModelShape(quantization="bf16", **shape), 128_000) / GIB == pytest.approx(
        published_gib, rel=0.005
    )


def test_total_adds_weights_kv_cache_and_runtime_overhead() -> None:
    shape = ModelShape(quantization="bf16", **LLAMA31_8B)
    estimate = estimate_vram(shape, 8192, overhead_mib=2048)
    expected = weights_bytes(shape) + kv_cache_bytes(shape, 8192) + 2048 * MIB
    assert estimate.total_bytes == expected
    assert estimate.as_dict()["kv_cache_mib"] == 1024  # 128 KiB per token x 8192 tokens
    assert estimate.notes == []


def test_kv_cache_grows_with_concurrent_sequences() -> None:
    shape = ModelShape(quantization="bf16", **LLAMA31_8B)
    assert kv_cache_bytes(shape, 4096, sequences=4) == 4 * kv_cache_bytes(shape, 4096)


def test_unknown_shape_falls_back_to_a_share_of_the_weights_and_says_so() -> None:
    estimate = estimate_vram(ModelShape(7.0, "fp16"), 4096, overhead_mib=0)
    assert estimate.kv_cache_bytes == round(estimate.weights_bytes * 0.10)
    assert "shape unknown" in estimate.notes[0]


def test_quantization_shrinks_weights_in_order() -> None:
    sizes = [
        weights_bytes(ModelShape(8.0, q))
        for q in ("fp32", "bf16", "q8_0", "q6_k", "q4_k_m", "int4")
    ]
    assert sizes == sorted(sizes, reverse=True)
