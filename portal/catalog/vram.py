"""How much GPU memory a model needs to serve, before it is deployed.

    total = weights + kv_cache + runtime_overhead

    weights   = parameters x bytes per parameter of the quantization
                (bf16/fp16 2, fp8/int8 1, int4/AWQ/GPTQ 0.5, GGUF k-quants by their mean
                 bits per weight: Q8_0 8.5, Q6_K 6.56, Q5_K_M 5.69, Q4_K_M 4.85, Q4_0 4.5)
    kv_cache  = 2 (K and V) x layers x kv_heads x head_dim x context_length
                x concurrent sequences x bytes per cache element (2 for an fp16 cache)
    overhead  = the runtime's fixed cost (CUDA context, activations, allocator slack),
                from the runtime template (`overhead_mib`)

Models without a recorded shape (layers, kv heads, head dim) get a KV cache of 10% of the
weights, a rough rule that says so in the estimate's `notes`. Checked against published
figures in tests/catalog/test_vram.py (NVIDIA's figure for Llama 2 7B, Hugging Face's table
for Llama 3.1 8B and 70B).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MIB = 1024 * 1024
BYTES_PER_PARAMETER = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "q8_0": 8.5 / 8,
    "q6_k": 6.56 / 8,
    "q5_k_m": 5.69 / 8,
    "q4_k_m": 4.85 / 8,
    "q4_0": 4.5 / 8,
    "int4": 0.5,
    "awq": 0.5,
    "gptq": 0.5,
}
QUANTIZATIONS = tuple(BYTES_PER_PARAMETER)
KV_BYTES_PER_ELEMENT = 2  # fp16 / bf16 cache, the default of vLLM, TGI and llama.cpp
FALLBACK_KV_FRACTION = 0.10


@dataclass(frozen=True)
class ModelShape:
    parameters_billions: float
    quantization: str
    num_layers: int | None = None
    num_kv_heads: int | None = None
    head_dim: int | None = None


@dataclass(frozen=True)
class VramEstimate:
    weights_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int
    context_length: int
    concurrent_sequences: int
    notes: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.overhead_bytes

    @property
    def total_mib(self) -> int:
        return -(-self.total_bytes // MIB)

    def as_dict(self) -> dict:
        """Return the estimate in MiB, as the API shows it."""
        return {
            "weights_mib": round(self.weights_bytes / MIB),
            "kv_cache_mib": round(self.kv_cache_bytes / MIB),
            "overhead_mib": round(self.overhead_bytes / MIB),
            "total_mib": self.total_mib,
            "context_length": self.context_length,
            "concurrent_sequences": self.concurrent_sequences,
            "notes": list(self.notes),
        }


def weights_bytes(shape: ModelShape) -> int:
    """Memory the weights take: parameter count x bytes per parameter."""
    return round(shape.parameters_billions * 1e9 * BYTES_PER_PARAMETER[shape.quantization])


def kv_cache_bytes(shape: ModelShape, context_length: int, sequences: int = 1) -> int | None:
    """Memory of the KV cache for `sequences` full contexts; None when the shape is unknown."""
    if not (shape.num_layers and shape.num_kv_heads and shape.head_dim):
        return None
    per_token = 2 * shape.num_layers * shape.num_kv_heads * shape.head_dim * KV_BYTES_PER_ELEMENT
    return per_token * context_length * sequences


def estimate_vram(
    shape: ModelShape, context_length: int, overhead_mib: int, sequences: int = 1
) -> VramEstimate:
    """Estimate the GPU memory needed to serve `shape` at `context_length`."""
    weights = weights_bytes(shape)
    kv_cache = kv_cache_bytes(shape, context_length, sequences)
    notes = []
    if kv_cache is None:
        kv_cache = round(weights * FALLBACK_KV_FRACTION)
        notes.append("model shape unknown: KV cache taken as 10% of the weights")
    return VramEstimate(weights, kv_cache, overhead_mib * MIB, context_length, sequences, notes)
