"""Model facts from real files: GGUF written by gguf-py, safetensors written by hand.

gguf and numpy are test dependencies only; portal.catalog.model_facts reads with the standard
library. No Docker, no network: every file is made here, tiny or sparse.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from portal.catalog.model_facts import (
    ModelFacts,
    ModelFactsError,
    catalog_fields,
    facts_from_files,
    facts_from_folder,
    family_of,
    read_config_json,
    read_gguf,
    read_safetensors_header,
)
from portal.catalog.model_headers import GgufArray, read_gguf_header
from portal.catalog.vram import ModelShape, estimate_vram

GIB = 1024**3
SEED_CATALOG = Path(__file__).parents[2] / "portal" / "seeds" / "catalog.json"

# numpy shapes, (rows, columns): ggml stores them reversed, ne0 = columns
TINY_LLAMA = {
    "token_embd.weight": (16, 64),
    "blk.0.attn_norm.weight": (64,),
    "blk.0.attn_q.weight": (64, 64),
    "blk.0.attn_k.weight": (32, 64),
    "blk.1.attn_norm.weight": (64,),
    "blk.1.attn_q.weight": (64, 64),
    "blk.1.attn_k.weight": (32, 64),
    "output_norm.weight": (64,),
}
TINY_PARAMETERS = sum(int(np.prod(shape)) for shape in TINY_LLAMA.values())


class CountingReader(io.RawIOBase):
    """A file wrapper that counts the bytes read through it (and can hide seeking)."""

    def __init__(self, path: Path, seekable: bool = True) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed with the wrapper
        self._seekable = seekable
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._seekable

    def readinto(self, buffer: Any) -> int:
        count = self._file.readinto(buffer)
        self.bytes_read += count
        return count

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if not self._seekable:
            raise io.UnsupportedOperation("seek")
        return self._file.seek(offset, whence)

    def close(self) -> None:
        self._file.close()
        super().close()


def write_gguf(
    path: Path,
    file_type: gguf.LlamaFileType | None = gguf.LlamaFileType.ALL_F32,
    tokens: int = 16,
    chat_template: str | None = "{{ messages }}",
    key_length: int | None = None,
    split_max_tensors: int = 0,
    kv_heads: int | list[int] = 2,
) -> Path:
    """Write a two-layer llama GGUF with TINY_LLAMA's tensors in `file_type`."""
    writer = gguf.GGUFWriter(path, "llama", split_max_tensors=split_max_tensors)
    writer.add_name("Tiny Llama")
    writer.add_context_length(4096)
    writer.add_block_count(2)
    writer.add_embedding_length(64)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(kv_heads)
    if key_length:
        writer.add_key_length(key_length)
    if file_type is not None:
        writer.add_file_type(file_type)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"token-{i}" for i in range(tokens)])
    writer.add_token_merges([f"t o{i}" for i in range(tokens)])
    if chat_template:
        writer.add_chat_template(chat_template)
    quantized = file_type == gguf.LlamaFileType.MOSTLY_Q8_0
    for name, shape in TINY_LLAMA.items():
        data = np.ones(shape, dtype=np.float32)
        if quantized and len(shape) == 2:
            q8 = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(name, gguf.quants.quantize(data, q8), raw_dtype=q8)
        elif file_type == gguf.LlamaFileType.MOSTLY_F16 and len(shape) == 2:
            writer.add_tensor(name, data.astype(np.float16))
        else:
            writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> Path:
    """Write a safetensors file by hand: the header JSON, then zero bytes for the data."""
    width = {"BF16": 2, "F16": 2, "F32": 4, "I8": 1}
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = int(np.prod(shape)) * width[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    path.write_bytes(safetensors_header_bytes(header) + bytes(offset))
    return path


def safetensors_header_bytes(header: dict[str, Any]) -> bytes:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def read_facts(path: Path) -> ModelFacts:
    with path.open("rb") as file:
        return read_gguf(file)


# --- GGUF --------------------------------------------------------------------------------------


def test_gguf_f32_gives_every_fact(tmp_path: Path) -> None:
    facts = read_facts(write_gguf(tmp_path / "tiny-f32.gguf"))

    assert facts.to_dict() == {
        "format": "gguf",
        "architecture": "llama",
        "family": "llama",
        "parameters": TINY_PARAMETERS,
        "parameters_billions": 0.0,
        "quantization": "f32",
        "dtype": "f32",
        "context_length": 4096,
        "num_layers": 2,
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_kv_heads": 2,
        "head_dim": 16,  # no key_length: embedding_length / head_count
        "vocab_size": 16,
        "size_bytes": None,  # the caller knows the file sizes
        "tensor_count": len(TINY_LLAMA),
        "chat_template": True,
        "name": "Tiny Llama",
        "notes": [],
    }
    json.dumps(facts.to_dict())


def test_gguf_q8_0_reads_file_type_key_length_and_tensor_types(tmp_path: Path) -> None:
    path = write_gguf(
        tmp_path / "tiny-q8.gguf",
        gguf.LlamaFileType.MOSTLY_Q8_0,
        chat_template=None,
        key_length=32,
    )
    facts = read_facts(path)

    assert facts.quantization == "q8_0"
    assert facts.dtype == "q8_0"  # most elements are in the q8_0 matrices
    assert facts.parameters == TINY_PARAMETERS  # elements, not bytes, of quantized tensors
    assert facts.head_dim == 32
    assert facts.chat_template is False
    assert facts.notes == []


def test_gguf_f16_file_type(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "tiny-f16.gguf", gguf.LlamaFileType.MOSTLY_F16)
    assert read_facts(path).quantization == "f16"
    assert catalog_fields(facts_from_folder(path))["quantization"] == "fp16"


def test_gguf_without_file_type_takes_the_most_common_matrix_type(tmp_path: Path) -> None:
    facts = read_facts(write_gguf(tmp_path / "tiny.gguf", file_type=None))
    assert facts.quantization == "f32"
    assert facts.notes == [
        "general.file_type is missing: quantization is the most common tensor type"
    ]


def test_gguf_per_layer_kv_heads_take_the_largest(tmp_path: Path) -> None:
    assert read_facts(write_gguf(tmp_path / "same.gguf", kv_heads=[2, 2])).notes == []
    facts = read_facts(write_gguf(tmp_path / "varies.gguf", kv_heads=[2, 0]))
    assert facts.num_kv_heads == 2
    assert facts.notes == ["llama.attention.head_count_kv varies by layer: the largest, 2, is used"]


def test_gguf_tensor_dims_are_ggml_order(tmp_path: Path) -> None:
    """numpy (32, 64) is ggml ne = [64, 32]: the element count is the same either way."""
    path = write_gguf(tmp_path / "tiny.gguf")
    reader = gguf.GGUFReader(path)
    k = next(t for t in reader.tensors if t.name == "blk.0.attn_k.weight")
    assert list(k.shape) == [64, 32]
    with path.open("rb") as file:
        assert read_gguf_header(file).parameters == TINY_PARAMETERS


def test_gguf_large_token_array_is_counted_not_stored(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "vocab.gguf", tokens=50_000, chat_template="x" * 20_000)
    reader = CountingReader(path, seekable=False)
    with reader:
        header = read_gguf_header(reader)

    tokens = header.metadata["tokenizer.ggml.tokens"]
    assert tokens == GgufArray(item_type=8, count=50_000, values=None)
    assert header.metadata["tokenizer.chat_template"] is None  # long: only its presence kept
    facts = read_facts(path)
    assert facts.vocab_size == 50_000
    assert facts.chat_template is True


def test_sparse_2_gib_gguf_reads_only_its_header(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "big.gguf", tokens=1000)
    os.truncate(path, 2 * GIB)  # a hole: the "weights" cost no disk
    reader = CountingReader(path)

    started = time.monotonic()
    facts = facts_from_files([("big.gguf", lambda: reader, 2 * GIB)])

    assert time.monotonic() - started < 2
    assert reader.bytes_read < 256 * 1024
    assert facts.num_layers == 2
    assert facts.size_bytes == 2 * GIB


def test_folder_with_gguf_shards_sums_parameters_and_sizes(tmp_path: Path) -> None:
    write_gguf(tmp_path / "tiny.gguf", split_max_tensors=3)
    shards = sorted(p.name for p in tmp_path.iterdir())
    assert shards == [f"tiny-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "lock").write_bytes(b"x" * 1000)  # hidden: not part of the model

    facts = facts_from_folder(tmp_path)

    assert facts.parameters == TINY_PARAMETERS
    assert facts.tensor_count == len(TINY_LLAMA)
    assert facts.size_bytes == sum((tmp_path / name).stat().st_size for name in shards)
    assert facts.num_layers == 2
    assert facts.notes == []


def test_missing_gguf_shard_leaves_parameters_unknown(tmp_path: Path) -> None:
    write_gguf(tmp_path / "tiny.gguf", split_max_tensors=3)
    (tmp_path / "tiny-00002-of-00003.gguf").unlink()

    facts = facts_from_folder(tmp_path)

    assert facts.parameters is None
    assert "2 of 3 GGUF shards present: parameters unknown" in facts.notes


def test_folder_of_several_ggufs_uses_the_largest(tmp_path: Path) -> None:
    write_gguf(tmp_path / "tiny-f32.gguf")
    write_gguf(tmp_path / "tiny-q8_0.gguf", gguf.LlamaFileType.MOSTLY_Q8_0)
    (tmp_path / "README.md").write_text("tiny")

    facts = facts_from_folder(tmp_path)

    assert facts.quantization == "f32"
    assert facts.size_bytes == (tmp_path / "tiny-f32.gguf").stat().st_size + 4
    assert any("the facts are from tiny-f32.gguf, the largest" in n for n in facts.notes)
    assert any("not counted in size_bytes" in n and "tiny-q8_0.gguf" in n for n in facts.notes)


# --- hostile and broken GGUF -----------------------------------------------------------------


def gguf_bytes(
    version: int = 3, tensors: int = 0, kvs: list[bytes] = (), tail: bytes = b""
) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensors, len(kvs)) + b"".join(kvs) + tail


def gguf_string(text: str) -> bytes:
    return struct.pack("<Q", len(text)) + text.encode()


def gguf_kv(key: str, value_type: int, payload: bytes) -> bytes:
    return gguf_string(key) + struct.pack("<I", value_type) + payload


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"abcd" + bytes(20), "not a GGUF file (magic b'abcd')"),
        (b"GG", "not a GGUF file (shorter than its 4-byte magic)"),
        (gguf_bytes(version=9), "GGUF version 9 is not supported"),
        (gguf_bytes(version=3 << 24), "it looks big-endian"),
        (gguf_bytes(tensors=1 << 62), "claims 4,611,686,018,427,387,904 tensors"),
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 1 << 40), "metadata entries, more than"),
        (gguf_bytes(kvs=[gguf_string("k") + struct.pack("<I", 42)]), "unknown value type 42"),
        (gguf_bytes(kvs=[gguf_kv("a", 8, struct.pack("<Q", 1 << 50))]), "bytes in the value of a"),
        (gguf_bytes(kvs=[gguf_kv("t", 9, struct.pack("<IQ", 8, 1 << 40))]), "items in the array t"),
        (
            gguf_bytes(kvs=[gguf_kv("n", 9, struct.pack("<IQIQIQ", 9, 1, 9, 1, 9, 1))]),
            "nests arrays deeper than 2",
        ),
        (gguf_bytes(kvs=[struct.pack("<Q", 1 << 40)]), "bytes in a metadata key"),
        (gguf_bytes(tensors=1, tail=gguf_string("w") + struct.pack("<I", 9)), "claims 9 dim"),
        (
            gguf_bytes(tensors=1, tail=gguf_string("w") + struct.pack("<I4Q", 4, *[1 << 20] * 4)),
            "elements in tensor 'w'",
        ),
        (gguf_bytes(tensors=3), "the file ends early"),
        (gguf_bytes(kvs=[gguf_kv("t", 9, struct.pack("<IQ", 8, 1000))]), "the file ends early"),
    ],
)
def test_hostile_gguf_raises_a_readable_error(data: bytes, message: str) -> None:
    with pytest.raises(ModelFactsError, match=re.escape(message)):
        read_gguf(io.BytesIO(data))


def test_every_truncation_of_a_real_gguf_header_is_an_error(tmp_path: Path) -> None:
    data = write_gguf(tmp_path / "tiny.gguf").read_bytes()
    with (tmp_path / "tiny.gguf").open("rb") as file:
        end = read_gguf_header(file).header_bytes
    assert 0 < end < len(data)
    for cut in range(end):
        with pytest.raises(ModelFactsError):
            read_gguf_header(io.BytesIO(data[:cut]))


def test_a_broken_gguf_in_a_folder_becomes_a_note(tmp_path: Path) -> None:
    (tmp_path / "model.gguf").write_bytes(b"GGUF" + struct.pack("<I", 9) + bytes(16))
    facts = facts_from_folder(tmp_path)
    assert facts.format == "gguf"
    assert facts.size_bytes == 24
    assert facts.notes == ["model.gguf: GGUF version 9 is not supported (2 and 3 are)"]


# --- safetensors -------------------------------------------------------------------------------

TINY_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "num_hidden_layers": 2,
    "hidden_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 8192,
    "rope_scaling": {"factor": 8.0, "rope_type": "llama3"},
    "torch_dtype": "bfloat16",
    "vocab_size": 16,
}


def write_tiny_safetensors_model(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    names = list(TINY_LLAMA)
    first = {n: ("BF16", list(TINY_LLAMA[n])) for n in names[:4]}
    second = {n: ("BF16", list(TINY_LLAMA[n])) for n in names[4:]}
    second["output_norm.weight"] = ("F32", [64])
    write_safetensors(folder / "model-00001-of-00002.safetensors", first)
    write_safetensors(folder / "model-00002-of-00002.safetensors", second)
    (folder / "config.json").write_text(json.dumps(TINY_CONFIG))
    (folder / "tokenizer.json").write_text("{}" + " " * 998)
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ x }}"}))


def test_safetensors_shards_and_config_give_exact_facts(tmp_path: Path) -> None:
    write_tiny_safetensors_model(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(bytes(100))  # another format's copy

    facts = facts_from_folder(tmp_path)

    files = [p for p in tmp_path.iterdir() if p.name != "pytorch_model.bin"]
    assert facts.to_dict() | {"notes": None} == {
        "format": "safetensors",
        "architecture": "LlamaForCausalLM",
        "family": "llama",
        "parameters": TINY_PARAMETERS,
        "parameters_billions": 0.0,
        "quantization": "bf16",
        "dtype": "bf16",
        "context_length": 8192,  # rope_scaling ignored
        "num_layers": 2,
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_kv_heads": 2,
        "head_dim": 16,
        "vocab_size": 16,
        "size_bytes": sum(p.stat().st_size for p in files),  # tokenizer files count too
        "tensor_count": len(TINY_LLAMA),
        "chat_template": True,
        "name": None,
        "notes": None,
    }
    assert facts.notes == ["not counted in size_bytes (not the served weights): pytorch_model.bin"]


def test_safetensors_header_counts_dtypes_and_skips_metadata(tmp_path: Path) -> None:
    write_tiny_safetensors_model(tmp_path)
    with (tmp_path / "model-00002-of-00002.safetensors").open("rb") as file:
        header = read_safetensors_header(file)
    assert header.tensor_count == 4
    assert header.dtypes == {"BF16": 64 + 64 * 64 + 32 * 64, "F32": 64}
    assert header.metadata == {"format": "pt"}


def test_unreadable_shard_is_estimated_from_its_size(tmp_path: Path) -> None:
    write_tiny_safetensors_model(tmp_path)
    broken = tmp_path / "model-00002-of-00002.safetensors"
    broken.write_bytes(b"\xff" * 8 + bytes(1000))

    facts = facts_from_folder(tmp_path)

    first = 16 * 64 + 64 + 64 * 64 + 32 * 64
    assert facts.parameters == first + (1008 - 8) // 2
    assert facts.tensor_count is None
    assert any(
        n.startswith("model-00002-of-00002.safetensors: the header claims") for n in facts.notes
    )
    assert any("parameters estimated from its size (1,008 bytes at 2 per" in n for n in facts.notes)


def test_sparse_2_gib_safetensors_reads_only_its_header(tmp_path: Path) -> None:
    header = {"w": {"dtype": "BF16", "shape": [32768, 32768], "data_offsets": [0, 2 * GIB]}}
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_header_bytes(header))
    os.truncate(path, path.stat().st_size + 2 * GIB)  # a hole: the weights cost no disk
    reader = CountingReader(path)

    facts = facts_from_files([("model.safetensors", lambda: reader, path.stat().st_size)])

    assert reader.bytes_read < 128 * 1024
    assert facts.parameters == 32768 * 32768
    assert "no readable config.json: architecture and shape unknown" in facts.notes


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x01", "shorter than its 8-byte header size"),
        (struct.pack("<Q", 1 << 40), "bytes of safetensors header, more than the 104,857,600"),
        (struct.pack("<Q", 10) + b"not json!!", "not valid JSON"),
        (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
        (struct.pack("<Q", 100) + b"{}", "the file ends early"),
        (safetensors_header_bytes({"w": {"dtype": "F16", "shape": [-1]}}), "no valid shape"),
        (safetensors_header_bytes({"w": {"dtype": "F16", "shape": [1 << 30] * 2}}), "elements"),
    ],
)
def test_hostile_safetensors_raises_a_readable_error(data: bytes, message: str) -> None:
    with pytest.raises(ModelFactsError, match=re.escape(message)):
        read_safetensors_header(io.BytesIO(data))


# --- config.json and the catalog ---------------------------------------------------------------

LLAMA_31_8B_CONFIG = {
    "_name_or_path": "meta-llama/Llama-3.1-8B-Instruct",
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009],
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "max_position_embeddings": 131072,
    "model_type": "llama",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {
        "factor": 8.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "vocab_size": 128256,
}
SEED_KEYS = ("family", "parameters_billions", "quantization", "format", "context_length",
             "num_layers", "num_kv_heads", "head_dim")  # fmt: skip
# The shard sizes Hugging Face lists for meta-llama/Llama-3.1-8B-Instruct.
LLAMA_31_8B_SHARDS = [4976698672, 4999802720, 4915916176, 1168138808]


def llama_31_8b_files() -> list[tuple[str, Callable[[], io.BytesIO], int]]:
    """The model's four shards as their headers only (real shapes), at their published sizes."""
    layer = {
        "self_attn.q_proj.weight": [4096, 4096],
        "self_attn.k_proj.weight": [1024, 4096],
        "self_attn.v_proj.weight": [1024, 4096],
        "self_attn.o_proj.weight": [4096, 4096],
        "mlp.gate_proj.weight": [14336, 4096],
        "mlp.up_proj.weight": [14336, 4096],
        "mlp.down_proj.weight": [4096, 14336],
        "input_layernorm.weight": [4096],
        "post_attention_layernorm.weight": [4096],
    }
    shards: list[dict[str, Any]] = [{} for _ in LLAMA_31_8B_SHARDS]
    shards[0]["model.embed_tokens.weight"] = {"dtype": "BF16", "shape": [128256, 4096]}
    for i in range(32):
        for name, shape in layer.items():
            shards[min(i // 9, 3)][f"model.layers.{i}.{name}"] = {"dtype": "BF16", "shape": shape}
    shards[3]["model.norm.weight"] = {"dtype": "BF16", "shape": [4096]}
    shards[3]["lm_head.weight"] = {"dtype": "BF16", "shape": [128256, 4096]}
    files = []
    for i, (header, size) in enumerate(zip(shards, LLAMA_31_8B_SHARDS, strict=True)):
        raw = safetensors_header_bytes(header)
        files.append((f"model-0000{i + 1}-of-00004.safetensors", lambda r=raw: io.BytesIO(r), size))
    config = json.dumps(LLAMA_31_8B_CONFIG).encode()
    files.append(("config.json", lambda: io.BytesIO(config), len(config)))
    return files


def test_llama_31_8b_gives_the_seed_catalogs_fields() -> None:
    files = llama_31_8b_files()
    facts = facts_from_files(files)

    assert facts.parameters == 8_030_261_248
    assert facts.tensor_count == 291
    assert facts.name == "meta-llama/Llama-3.1-8B-Instruct"
    assert facts.vocab_size == 128256
    seed = next(
        m
        for m in json.loads(SEED_CATALOG.read_text())["models"]
        if m["name"] == "llama-3.1-8b-instruct"
    )
    fields = catalog_fields(facts)
    assert {k: fields[k] for k in SEED_KEYS} == {k: seed[k] for k in SEED_KEYS}
    assert [fields[k] for k in ("num_layers", "num_kv_heads", "head_dim")] == [32, 8, 128]
    assert (fields["context_length"], fields["quantization"]) == (131072, "bf16")
    assert fields["size_bytes"] == sum(size for _, _, size in files)
    # The seed's size is the published parameter bytes; the files add their headers.
    assert 0 < fields["size_bytes"] - seed["size_bytes"] < 100_000
    shape = ModelShape(**{k: fields[k] for k in ModelShape.__dataclass_fields__})
    assert estimate_vram(shape, 131072, overhead_mib=0).kv_cache_bytes == 16 * GIB


def test_config_reads_text_config_defaults_and_new_dtype_key() -> None:
    facts = read_config_json(
        {
            "architectures": ["Gemma3ForConditionalGeneration"],
            "model_type": "gemma3",
            "dtype": "bfloat16",
            "text_config": {
                "model_type": "gemma3_text",
                "num_hidden_layers": 34,
                "hidden_size": 2560,
                "num_attention_heads": 8,
                "max_position_embeddings": 131072,
                "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                "vocab_size": 262208,
            },
            "vision_config": {"num_hidden_layers": 27, "hidden_size": 1152},
        }
    )
    assert (facts.family, facts.num_layers, facts.hidden_size) == ("gemma", 34, 2560)
    assert facts.num_kv_heads == 8  # no num_key_value_heads: one KV head per attention head
    assert facts.head_dim == 320  # no head_dim: hidden_size // num_attention_heads
    assert facts.context_length == 131072
    assert (facts.dtype, facts.quantization) == ("bf16", "bf16")


def test_config_quantization_method_wins_over_dtype() -> None:
    facts = read_config_json(
        {
            "model_type": "qwen2",
            "torch_dtype": "float16",
            "quantization_config": {"quant_method": "AWQ"},
        }
    )
    assert (facts.family, facts.dtype, facts.quantization) == ("qwen", "f16", "awq")
    assert catalog_fields(facts) == {"family": "qwen", "quantization": "awq"}


def test_config_that_is_not_an_object_is_an_error() -> None:
    with pytest.raises(ModelFactsError, match=r"config\.json is not a JSON object"):
        read_config_json(["not", "a", "dict"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("architecture", "family"),
    [
        ("LlamaForCausalLM", "llama"),
        ("Qwen2ForCausalLM", "qwen"),
        ("qwen2moe", "qwen"),
        ("Gemma2ForCausalLM", "gemma"),
        ("gemma3_text", "gemma"),
        ("Phi3ForCausalLM", "phi"),
        ("MistralForCausalLM", "mistral"),
        ("DeepseekV3ForCausalLM", "deepseek"),
        ("command-r", "command"),
        (None, None),
    ],
)
def test_family_of(architecture: str | None, family: str | None) -> None:
    assert family_of(architecture) == family


def test_catalog_fields_leave_unknown_quantizations_to_the_form() -> None:
    facts = ModelFacts(format="gguf", quantization="iq2_xs", num_layers=2)
    assert catalog_fields(facts) == {"format": "gguf", "num_layers": 2}
    assert catalog_fields(ModelFacts()) == {}


def test_awq_safetensors_say_their_count_is_of_stored_elements(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "model.safetensors", {"q.qweight": ("I8", [64, 8])})
    config = TINY_CONFIG | {"quantization_config": {"quant_method": "awq", "bits": 4}}
    (tmp_path / "config.json").write_text(json.dumps(config))

    facts = facts_from_folder(tmp_path)

    assert (facts.quantization, facts.dtype, facts.parameters) == ("awq", "i8", 512)
    assert any("awq packs several weights per stored element" in n for n in facts.notes)


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFactsError, match="does not exist"):
        facts_from_folder(tmp_path / "nowhere")


def test_files_without_weights_say_so(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(TINY_CONFIG))
    facts = facts_from_folder(tmp_path)
    assert facts.format == "unknown"
    assert facts.num_layers == 2
    assert facts.notes == ["no .gguf or .safetensors weights among the files"]
