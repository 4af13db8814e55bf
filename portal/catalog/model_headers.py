"""Parse model file headers, streamed: GGUF metadata and tensor infos, safetensors JSON.

Only the header bytes are read (a long skip seeks when the file allows it), every length and
count is capped, and a truncated file ends in an error rather than a loop. Failures raise
`ModelFactsError` with a message a person can read. Standard library only; model_facts.py
turns these headers into a model's facts.
"""

from __future__ import annotations

import json
import os
import struct
from collections import Counter
from dataclasses import dataclass
from typing import Any, BinaryIO

# Limits against hostile headers; real models are far below each.
MAX_KEY_BYTES = 65_535  # GGUF keys and tensor names (llama.cpp caps keys the same)
MAX_STRING_BYTES = 16 * 1024 * 1024  # one metadata string (chat templates are a few KB)
MAX_ARRAY_ITEMS = 1 << 24  # tokenizer vocabularies and merges hold well under a million
MAX_ARRAY_DEPTH = 2
MAX_KV_COUNT = 100_000
MAX_TENSORS = 1_000_000
MAX_TENSOR_ELEMENTS = 1 << 48
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
KEEP_STRING_BYTES = 4096  # longer strings (chat templates) are skipped, only their presence kept
KEEP_ARRAY_ITEMS = 1024  # short numeric arrays (per-layer head counts) are kept


class ModelFactsError(ValueError):
    """A model file that cannot be read, with the reason in words."""


# --- streaming ---------------------------------------------------------------------------


class _Stream:
    """Forward-only exact reads over a file object; long skips seek when the file can."""

    CHUNK = 64 * 1024

    def __init__(self, fileobj: BinaryIO) -> None:
        self._file = fileobj
        self._buf = b""
        self._pos = 0
        self.offset = 0
        try:
            self._seekable = bool(fileobj.seekable())
        except (AttributeError, OSError):
            self._seekable = False

    def take(self, n: int) -> bytes:
        if len(self._buf) - self._pos < n:
            self._fill(n)
        data = self._buf[self._pos : self._pos + n]
        self._pos += n
        self.offset += n
        return data

    def _fill(self, n: int) -> None:
        parts = [self._buf[self._pos :]]
        have = len(parts[0])
        while have < n:
            chunk = self._file.read(max(n - have, self.CHUNK))
            if not chunk:
                raise ModelFactsError(
                    f"the file ends early: {n:,} bytes wanted at offset {self.offset:,}, "
                    f"only {have:,} left (truncated or still downloading?)"
                )
            parts.append(chunk)
            have += len(chunk)
        self._buf, self._pos = b"".join(parts), 0

    def skip(self, n: int) -> None:
        available = len(self._buf) - self._pos
        if n <= available:
            self._pos += n
            self.offset += n
            return
        rest = n - available
        self._buf, self._pos = b"", 0
        self.offset += n
        if self._seekable:
            # Seek to the skipped span's last byte and read it: a truncated file says so here.
            self._file.seek(rest - 1, os.SEEK_CUR)
            if not self._file.read(1):
                raise ModelFactsError(f"the file ends early, inside a {n:,}-byte span it skips")
            return
        while rest:
            chunk = self._file.read(min(rest, self.CHUNK))
            if not chunk:
                raise ModelFactsError(f"the file ends early, {rest:,} bytes short of {n:,}")
            rest -= len(chunk)

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]


def _bounded(value: int, limit: int, what: str) -> int:
    if value > limit:
        raise ModelFactsError(
            f"the header claims {value:,} {what}, more than the {limit:,} this reader accepts "
            "(a corrupt or hostile file)"
        )
    return value


# --- GGUF ----------------------------------------------------------------------------------

# llama.cpp's llama_ftype (general.file_type), as llama-quantize names them, lowercased.
LLAMA_FTYPE = {
    0: "f32", 1: "f16", 2: "q4_0", 3: "q4_1", 4: "q4_1_some_f16", 7: "q8_0", 8: "q5_0",
    9: "q5_1", 10: "q2_k", 11: "q3_k_s", 12: "q3_k_m", 13: "q3_k_l", 14: "q4_k_s",
    15: "q4_k_m", 16: "q5_k_s", 17: "q5_k_m", 18: "q6_k", 19: "iq2_xxs", 20: "iq2_xs",
    21: "q2_k_s", 22: "iq3_xs", 23: "iq3_xxs", 24: "iq1_s", 25: "iq4_nl", 26: "iq3_s",
    27: "iq3_m", 28: "iq2_s", 29: "iq2_m", 30: "iq4_xs", 31: "iq1_m", 32: "bf16",
    33: "q4_0_4_4", 34: "q4_0_4_8", 35: "q4_0_8_8", 36: "tq1_0", 37: "tq2_0",
    38: "mxfp4_moe", 39: "nvfp4", 40: "q1_0",
}  # fmt: skip
# ggml's ggml_type of each tensor.
GGML_TYPES = {
    0: "f32", 1: "f16", 2: "q4_0", 3: "q4_1", 6: "q5_0", 7: "q5_1", 8: "q8_0", 9: "q8_1",
    10: "q2_k", 11: "q3_k", 12: "q4_k", 13: "q5_k", 14: "q6_k", 15: "q8_k", 16: "iq2_xxs",
    17: "iq2_xs", 18: "iq3_xxs", 19: "iq1_s", 20: "iq4_nl", 21: "iq3_s", 22: "iq2_s",
    23: "iq4_xs", 24: "i8", 25: "i16", 26: "i32", 27: "i64", 28: "f64", 29: "iq1_m",
    30: "bf16", 34: "tq1_0", 35: "tq2_0", 39: "mxfp4", 40: "nvfp4", 41: "q1_0",
}  # fmt: skip
_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
                 10: "<Q", 11: "<q", 12: "<d"}  # fmt: skip
_GGUF_STRING, _GGUF_ARRAY = 8, 9
GGML_MAX_DIMS = 4


@dataclass(frozen=True)
class GgufArray:
    """A metadata array: its length always, its values only when short and numeric."""

    item_type: int
    count: int
    values: tuple[Any, ...] | None = None


@dataclass
class GgufHeader:
    version: int
    metadata: dict[str, Any]  # strings longer than KEEP_STRING_BYTES are None
    tensor_count: int
    elements_by_type: Counter[int]  # ggml type -> element count, over all tensors
    matrix_elements_by_type: Counter[int]  # the same over tensors of 2 or more dims
    header_bytes: int = 0  # where the tensor infos end (the data follows, aligned)

    @property
    def parameters(self) -> int:
        return sum(self.elements_by_type.values())


def _gguf_string(stream: _Stream, limit: int, what: str) -> str:
    length = _bounded(stream.unpack("<Q"), limit, f"bytes in {what}")
    return stream.take(length).decode("utf-8", errors="replace")


def _gguf_value(stream: _Stream, value_type: int, key: str, depth: int = 0) -> Any:
    """Read one metadata value; long strings, long arrays and array items are skipped."""
    keep = depth == 0
    if value_type in _GGUF_SCALARS:
        return stream.unpack(_GGUF_SCALARS[value_type])
    if value_type == _GGUF_STRING:
        length = _bounded(stream.unpack("<Q"), MAX_STRING_BYTES, f"bytes in the value of {key}")
        if length > KEEP_STRING_BYTES or not keep:
            stream.skip(length)
            return None
        return stream.take(length).decode("utf-8", errors="replace")
    if value_type != _GGUF_ARRAY:
        raise ModelFactsError(f"metadata key {key!r} has unknown value type {value_type}")
    if depth >= MAX_ARRAY_DEPTH:
        raise ModelFactsError(f"metadata key {key!r} nests arrays deeper than {MAX_ARRAY_DEPTH}")
    item_type = stream.unpack("<I")
    count = _bounded(stream.unpack("<Q"), MAX_ARRAY_ITEMS, f"items in the array {key}")
    if item_type in _GGUF_SCALARS:
        fmt = _GGUF_SCALARS[item_type]
        if keep and count <= KEEP_ARRAY_ITEMS:
            values = struct.unpack(f"<{count}{fmt[1]}", stream.take(count * struct.calcsize(fmt)))
            return GgufArray(item_type, count, values)
        stream.skip(count * struct.calcsize(fmt))
        return GgufArray(item_type, count)
    for _ in range(count):  # strings or nested arrays: walk them, keep nothing (tokens, merges)
        _gguf_value(stream, item_type, key, depth + 1)
    return GgufArray(item_type, count)


def read_gguf_header(fileobj: BinaryIO) -> GgufHeader:
    """Parse a GGUF file's metadata and tensor infos (little-endian, versions 2 and 3)."""
    stream = _Stream(fileobj)
    try:
        magic = stream.take(4)
    except ModelFactsError:
        raise ModelFactsError("not a GGUF file (shorter than its 4-byte magic)") from None
    if magic != b"GGUF":
        raise ModelFactsError(f"not a GGUF file (magic {magic!r})")
    version = stream.unpack("<I")
    if version not in (2, 3):
        swapped = " (it looks big-endian, which is not supported)" if version >= 1 << 24 else ""
        raise ModelFactsError(f"GGUF version {version} is not supported (2 and 3 are){swapped}")
    tensor_count = _bounded(stream.unpack("<Q"), MAX_TENSORS, "tensors")
    kv_count = _bounded(stream.unpack("<Q"), MAX_KV_COUNT, "metadata entries")
    metadata: dict[str, Any] = {}
    for _ in range(kv_count):
        key = _gguf_string(stream, MAX_KEY_BYTES, "a metadata key")
        metadata[key] = _gguf_value(stream, stream.unpack("<I"), key)
    header = GgufHeader(version, metadata, tensor_count, Counter(), Counter())
    for _ in range(tensor_count):
        _read_tensor_info(stream, header)
    header.header_bytes = stream.offset
    return header


def _read_tensor_info(stream: _Stream, header: GgufHeader) -> None:
    name = _gguf_string(stream, MAX_KEY_BYTES, "a tensor name")
    n_dims = stream.unpack("<I")
    if not 1 <= n_dims <= GGML_MAX_DIMS:
        raise ModelFactsError(f"tensor {name!r} claims {n_dims} dimensions (1 to 4 exist)")
    dims = struct.unpack(f"<{n_dims}Q", stream.take(8 * n_dims))
    elements = 1
    for dim in dims:
        elements *= dim
    _bounded(elements, MAX_TENSOR_ELEMENTS, f"elements in tensor {name!r}")
    ggml_type = stream.unpack("<I")
    stream.skip(8)  # the tensor's offset in the data section: its data is never read
    header.elements_by_type[ggml_type] += elements
    if sum(1 for dim in dims if dim > 1) >= 2:
        header.matrix_elements_by_type[ggml_type] += elements


# --- safetensors -----------------------------------------------------------------------------


@dataclass
class SafetensorsHeader:
    parameters: int
    tensor_count: int
    dtypes: Counter[str]  # dtype as written ("BF16") -> element count
    metadata: dict[str, Any]


def read_safetensors_header(fileobj: BinaryIO) -> SafetensorsHeader:
    """Read a safetensors file's JSON header: its exact parameter count and dtypes."""
    stream = _Stream(fileobj)
    try:
        length = stream.unpack("<Q")
    except ModelFactsError:
        raise ModelFactsError(
            "not a safetensors file (shorter than its 8-byte header size)"
        ) from None
    if length < 2:
        raise ModelFactsError(f"not a safetensors file (header size {length})")
    _bounded(length, MAX_SAFETENSORS_HEADER, "bytes of safetensors header")
    try:
        header = json.loads(stream.take(length).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelFactsError(f"the safetensors header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ModelFactsError("the safetensors header is not a JSON object")
    result = SafetensorsHeader(0, 0, Counter(), {})
    for name, info in header.items():
        if name == "__metadata__":
            result.metadata = info if isinstance(info, dict) else {}
            continue
        shape = info.get("shape") if isinstance(info, dict) else None
        dtype = info.get("dtype") if isinstance(info, dict) else None
        if not (isinstance(shape, list) and isinstance(dtype, str) and all(_dim(d) for d in shape)):
            raise ModelFactsError(f"tensor {name!r} in the safetensors header has no valid shape")
        elements = 1
        for dim in shape:
            elements *= dim
        _bounded(elements, MAX_TENSOR_ELEMENTS, f"elements in tensor {name!r}")
        result.parameters += elements
        result.tensor_count += 1
        result.dtypes[dtype] += elements
    return result


def _dim(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
