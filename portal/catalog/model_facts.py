"""Read an LLM's facts (shape, size, quantization) from its files instead of asking a person.

Only headers are read, streamed from binary file objects: a GGUF's metadata and tensor
infos, each safetensors shard's JSON header, config.json. A 40 GB model costs a few MB of
reads. Broken or hostile files raise `ModelFactsError` with a message a person can act on;
`facts_from_files` turns those into `notes` and fills what it can. Standard library only.

    facts = facts_from_folder("/models/Meta-Llama-3.1-8B-Instruct")
    catalog_fields(facts)  # the LlmModel columns it could fill; a form may override each
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from portal.catalog.model_headers import (
    GGML_TYPES,
    LLAMA_FTYPE,
    GgufArray,
    GgufHeader,
    ModelFactsError,
    read_gguf_header,
    read_safetensors_header,
)
from portal.catalog.vram import QUANTIZATIONS

__all__ = [
    "ModelFacts",
    "ModelFactsError",
    "catalog_fields",
    "facts_from_files",
    "facts_from_folder",
    "family_of",
    "read_config_json",
    "read_gguf",
    "read_safetensors_header",
]

MAX_JSON_FILE = 16 * 1024 * 1024  # config.json, tokenizer_config.json

Opener = Callable[[], BinaryIO]
FileEntry = tuple[str, Opener, int]


@dataclass
class ModelFacts:
    """What a model's files say about it; None where they do not say."""

    format: str = "unknown"  # gguf | safetensors | unknown
    architecture: str | None = None
    family: str | None = None
    parameters: int | None = None
    parameters_billions: float | None = None
    quantization: str | None = None
    dtype: str | None = None
    context_length: int | None = None
    num_layers: int | None = None
    hidden_size: int | None = None
    num_attention_heads: int | None = None
    num_kv_heads: int | None = None
    head_dim: int | None = None
    vocab_size: int | None = None
    size_bytes: int | None = None
    tensor_count: int | None = None
    chat_template: bool | None = None
    name: str | None = None
    notes: list[str] = field(default_factory=list)

    def set_parameters(self, count: int | None) -> None:
        """Record the parameter count and its rounded billions."""
        self.parameters = count
        self.parameters_billions = None if count is None else round(count / 1e9, 2)

    def to_dict(self) -> dict[str, Any]:
        """Return the facts as JSON-safe values (None for unknown)."""
        return asdict(self)


def family_of(architecture: str | None) -> str | None:
    """Normalise an architecture ("LlamaForCausalLM", "qwen2", "gemma3_text") to a family."""
    if not architecture:
        return None
    base = re.split(r"For[A-Z]", architecture)[0].lower()
    match = re.fullmatch(r"([a-z]+?)(?:[-_]?v?\d.*)?", base) or re.match(r"[a-z]+", base)
    return match.group(1 if match.re.groups else 0) if match else base


# --- GGUF ------------------------------------------------------------------------------------


def read_gguf(fileobj: BinaryIO) -> ModelFacts:
    """Read a GGUF model's facts from its header (size_bytes is left to the caller)."""
    return gguf_facts(read_gguf_header(fileobj))


def gguf_facts(header: GgufHeader) -> ModelFacts:
    """Map a parsed GGUF header to model facts."""
    meta = header.metadata
    arch = _text(meta.get("general.architecture"))
    facts = ModelFacts(format="gguf", architecture=arch, family=family_of(arch))
    facts.name = _text(meta.get("general.name"))
    facts.tensor_count = header.tensor_count
    facts.chat_template = "tokenizer.chat_template" in meta
    facts.set_parameters(header.parameters if header.tensor_count else None)
    if arch is None:
        facts.notes.append("general.architecture is missing: the model's shape is unknown")

    def shape(key: str) -> int | None:
        return _as_int(meta.get(f"{arch}.{key}"), f"{arch}.{key}", facts.notes)

    facts.context_length = shape("context_length")
    facts.num_layers = shape("block_count")
    facts.hidden_size = shape("embedding_length")
    facts.num_attention_heads = shape("attention.head_count")
    facts.num_kv_heads = shape("attention.head_count_kv") or facts.num_attention_heads
    facts.head_dim = shape("attention.key_length") or _divide(
        facts.hidden_size, facts.num_attention_heads
    )
    tokens = meta.get("tokenizer.ggml.tokens")
    facts.vocab_size = tokens.count if isinstance(tokens, GgufArray) else shape("vocab_size")
    facts.dtype = _type_name(_most(header.elements_by_type))
    facts.quantization = _gguf_quantization(meta.get("general.file_type"), header, facts.notes)
    return facts


def _gguf_quantization(file_type: Any, header: GgufHeader, notes: list[str]) -> str | None:
    if isinstance(file_type, int) and file_type in LLAMA_FTYPE:
        return LLAMA_FTYPE[file_type]
    guess = _type_name(_most(header.matrix_elements_by_type or header.elements_by_type))
    reason = "missing" if file_type is None else f"{file_type!r}, unknown"
    notes.append(f"general.file_type is {reason}: quantization is the most common tensor type")
    return guess


def _most(counter: Counter[Any]) -> Any:
    return counter.most_common(1)[0][0] if counter else None


def _type_name(ggml_type: int | None) -> str | None:
    return None if ggml_type is None else GGML_TYPES.get(ggml_type, f"ggml type {ggml_type}")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _as_int(value: Any, key: str, notes: list[str]) -> int | None:
    """An integer fact; a per-layer array gives its largest value, said in the notes."""
    if isinstance(value, GgufArray) and value.values:
        numbers = [int(v) for v in value.values if isinstance(v, int | float)]
        if len(set(numbers)) > 1:
            notes.append(f"{key} varies by layer: the largest, {max(numbers)}, is used")
        return max(numbers) if numbers else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _divide(a: int | None, b: int | None) -> int | None:
    return a // b if a and b else None


# --- config.json -------------------------------------------------------------


# torch / safetensors dtype names -> the short lowercase names the facts use
DTYPE_NAMES = {
    "bfloat16": "bf16", "float16": "f16", "half": "f16", "float32": "f32", "float": "f32",
    "float64": "f64", "float8_e4m3fn": "f8_e4m3", "float8_e5m2": "f8_e5m2", "int8": "i8",
}  # fmt: skip
DTYPE_BYTES = {
    "f64": 8, "i64": 8, "f32": 4, "i32": 4, "bf16": 2, "f16": 2, "i16": 2,
    "f8_e4m3": 1, "f8_e5m2": 1, "i8": 1, "u8": 1,
}  # fmt: skip
PACKED_QUANTIZATIONS = ("awq", "gptq", "bitsandbytes", "compressed-tensors")


def _dtype_name(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    value = value.lower().removeprefix("torch.")
    return DTYPE_NAMES.get(value, value)


def read_config_json(data: Mapping[str, Any]) -> ModelFacts:
    """Read a Hugging Face config.json's facts (a multimodal config's text_config first)."""
    if not isinstance(data, Mapping):
        raise ModelFactsError("config.json is not a JSON object")
    text = data.get("text_config")
    sources = [text, data] if isinstance(text, Mapping) else [data]

    def pick(*keys: str) -> Any:
        for source in sources:
            for key in keys:
                value = source.get(key)
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    return value
        return None

    architectures = data.get("architectures")
    arch = architectures[0] if isinstance(architectures, list) and architectures else None
    facts = ModelFacts(architecture=_text(arch))
    facts.family = family_of(_text(data.get("model_type")) or facts.architecture)
    facts.name = _text(data.get("_name_or_path"))
    facts.num_layers = pick("num_hidden_layers", "n_layer", "num_layers")
    facts.hidden_size = pick("hidden_size", "n_embd", "d_model")
    facts.num_attention_heads = pick("num_attention_heads", "n_head")
    facts.num_kv_heads = pick("num_key_value_heads", "num_kv_heads") or facts.num_attention_heads
    facts.head_dim = pick("head_dim") or _divide(facts.hidden_size, facts.num_attention_heads)
    # rope_scaling is ignored: max_position_embeddings already is the served context
    facts.context_length = pick("max_position_embeddings", "n_positions", "max_sequence_length")
    facts.vocab_size = pick("vocab_size")
    dtypes = [s.get(k) for s in (data, text or {}) for k in ("torch_dtype", "dtype")]
    facts.dtype = next(filter(None, map(_dtype_name, dtypes)), None)
    quant = data.get("quantization_config")
    method = quant.get("quant_method") if isinstance(quant, Mapping) else None
    facts.quantization = _text(method.lower() if isinstance(method, str) else None) or facts.dtype
    return facts


# --- whole models ----------------------------------------------------------------------------

# Weight files of other formats that sit beside safetensors in many repositories
# (pytorch_model.bin, original/consolidated.00.pth): served models do not load them.
OTHER_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".gguf")
_SHARD = re.compile(r"^(?P<stem>.+?)-(?P<index>\d{5})-of-(?P<total>\d{5})$")


def facts_from_files(files: Iterable[FileEntry]) -> ModelFacts:
    """Read a model's facts from its files: (relative path, opener, size) for each."""
    entries = [(path.replace("\\", "/"), opener, int(size)) for path, opener, size in files]
    weights = [e for e in entries if e[0].lower().endswith(".safetensors")]
    ggufs = [e for e in entries if e[0].lower().endswith(".gguf")]
    if weights:
        facts, left_out = _safetensors_model(entries, weights)
    elif ggufs:
        facts, left_out = _gguf_model(ggufs)
    else:
        facts, left_out = ModelFacts(), []
        facts.notes.append("no .gguf or .safetensors weights among the files")
        _merge_config(facts, _json_file(entries, "config.json", facts.notes))
    if left_out:
        names = ", ".join(path for path, _, _ in left_out[:5])
        more = f" and {len(left_out) - 5} more" if len(left_out) > 5 else ""
        facts.notes.append(f"not counted in size_bytes (not the served weights): {names}{more}")
    skipped = {path for path, _, _ in left_out}
    facts.size_bytes = sum(size for path, _, size in entries if path not in skipped)
    return facts


def facts_from_folder(path: str | os.PathLike[str]) -> ModelFacts:
    """Read the facts of the model in a folder (or of one model file); hidden files skipped."""
    root = Path(path)
    if not root.exists():
        raise ModelFactsError(f"{root} does not exist")
    if root.is_file():
        return facts_from_files([(root.name, _opener(root), root.stat().st_size)])
    entries = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            file = Path(folder, name)
            if not name.startswith(".") and file.is_file():
                entries.append(
                    (file.relative_to(root).as_posix(), _opener(file), file.stat().st_size)
                )
    return facts_from_files(entries)


def _opener(file: Path) -> Opener:
    return lambda: file.open("rb")


def _shard_key(path: str) -> tuple[str, int, int] | None:
    stem = path.rsplit(".", 1)[0]
    match = _SHARD.match(stem)
    return (match["stem"], int(match["index"]), int(match["total"])) if match else None


def _group(entries: list[FileEntry]) -> dict[str, list[FileEntry]]:
    """Group weight files into models: shards of one stem together, other files alone."""
    groups: dict[str, list[FileEntry]] = {}
    for entry in sorted(entries, key=lambda e: e[0]):
        shard = _shard_key(entry[0])
        groups.setdefault(shard[0] if shard else entry[0].rsplit(".", 1)[0], []).append(entry)
    return groups


def _gguf_model(ggufs: list[FileEntry]) -> tuple[ModelFacts, list[FileEntry]]:
    """The largest GGUF (all its shards) is the model; an mmproj file is loaded beside it."""
    groups = _group(ggufs)
    projectors = [k for k in groups if "mmproj" in k.rsplit("/", 1)[-1].lower()]
    candidates = [k for k in groups if k not in projectors] or list(groups)
    chosen = max(candidates, key=lambda k: sum(size for _, _, size in groups[k]))
    shards = groups[chosen]
    kept = {chosen, *projectors}
    left_out = [e for k, group in groups.items() if k not in kept for e in group]
    notes: list[str] = []
    facts = _read_file(shards[0], read_gguf, notes) or ModelFacts(format="gguf")
    facts.notes[:0] = notes
    if left_out:
        facts.notes.append(f"several GGUF models: the facts are from {shards[0][0]}, the largest")
    if len(shards) > 1 or _shard_key(shards[0][0]):
        _add_gguf_shards(facts, shards)
    return facts, left_out


def _add_gguf_shards(facts: ModelFacts, shards: list[FileEntry]) -> None:
    if facts.tensor_count is None:  # the first shard was unreadable, said in the notes
        return
    key = _shard_key(shards[0][0])
    total = key[2] if key else len(shards)
    if len(shards) != total:
        facts.notes.append(f"{len(shards)} of {total} GGUF shards present: parameters unknown")
        facts.set_parameters(None)
        return
    parameters, tensors = facts.parameters or 0, facts.tensor_count or 0
    for entry in shards[1:]:
        shard = _read_file(entry, read_gguf_header, facts.notes)
        if shard is None:
            facts.set_parameters(None)
            return
        parameters += shard.parameters
        tensors += shard.tensor_count
    facts.set_parameters(parameters)
    facts.tensor_count = tensors


def _safetensors_model(
    entries: list[FileEntry], weights: list[FileEntry]
) -> tuple[ModelFacts, list[FileEntry]]:
    groups = _group(weights)
    preferred = [k for k in groups if k.rsplit("/", 1)[-1] == "model"]
    chosen = (
        min(preferred, key=len)
        if preferred
        else max(groups, key=lambda k: sum(size for _, _, size in groups[k]))
    )
    shards = groups[chosen]
    folder = chosen.rsplit("/", 1)[0] + "/" if "/" in chosen else ""
    facts = ModelFacts(format="safetensors")
    config = _json_file(entries, folder + "config.json", facts.notes)
    _merge_config(facts, config)
    facts.chat_template = _has_chat_template(entries, folder, facts.notes)
    _count_safetensors(facts, shards)
    others = [e for k, g in groups.items() if k != chosen for e in g]
    others += [e for e in entries if e[0].lower().endswith(OTHER_WEIGHTS)]
    return facts, others


def _count_safetensors(facts: ModelFacts, shards: list[FileEntry]) -> None:
    dtypes: Counter[str] = Counter()
    parameters = tensors = 0
    unreadable = []
    for entry in shards:
        header = _read_file(entry, read_safetensors_header, facts.notes)
        if header is None:
            unreadable.append(entry)
            continue
        parameters += header.parameters
        tensors += header.tensor_count
        dtypes.update(header.dtypes)
    if dtypes:
        facts.dtype = _most(dtypes).lower()
    if facts.quantization is None or facts.quantization in DTYPE_BYTES:
        facts.quantization = facts.dtype  # a plain dtype; a quant_method (awq, fp8) stays
    if facts.quantization in PACKED_QUANTIZATIONS:
        facts.notes.append(
            f"{facts.quantization} packs several weights per stored element: "
            "the parameter count is of stored elements and lower than the model's"
        )
    width = DTYPE_BYTES.get(facts.dtype or "", 2)
    for path, _, size in unreadable:
        parameters += max(size - 8, 0) // width
        facts.notes.append(
            f"{path}: parameters estimated from its size ({size:,} bytes at {width} per parameter)"
        )
    facts.set_parameters(parameters)
    facts.tensor_count = tensors if not unreadable else None


def _merge_config(facts: ModelFacts, config: dict[str, Any] | None) -> None:
    if config is None:
        facts.notes.append("no readable config.json: architecture and shape unknown")
        return
    try:
        found = read_config_json(config)
    except ModelFactsError as exc:
        facts.notes.append(f"config.json: {exc}")
        return
    for name in ModelFacts.__dataclass_fields__:
        if name not in ("format", "notes") and getattr(found, name) is not None:
            setattr(facts, name, getattr(found, name))


def _has_chat_template(entries: list[FileEntry], folder: str, notes: list[str]) -> bool | None:
    paths = {path for path, _, _ in entries}
    if {folder + "chat_template.jinja", folder + "chat_template.json"} & paths:
        return True
    tokenizer = _json_file(entries, folder + "tokenizer_config.json", notes)
    return None if tokenizer is None else bool(tokenizer.get("chat_template"))


def _json_file(entries: list[FileEntry], path: str, notes: list[str]) -> dict[str, Any] | None:
    entry = next((e for e in entries if e[0] == path), None)
    if entry is None:
        return None
    if entry[2] > MAX_JSON_FILE:
        notes.append(f"{path}: {entry[2]:,} bytes, larger than the {MAX_JSON_FILE:,} read")
        return None
    try:
        with entry[1]() as file:
            data = json.loads(file.read(MAX_JSON_FILE + 1))
    except (OSError, ValueError, RecursionError) as exc:
        notes.append(f"{path}: not readable JSON ({exc})")
        return None
    return data if isinstance(data, dict) else None


def _read_file(entry: FileEntry, reader: Callable[[BinaryIO], Any], notes: list[str]) -> Any:
    """Run a header reader on one file; a failure becomes a note and None."""
    path, opener, _ = entry
    try:
        with opener() as file:
            return reader(file)
    except (ModelFactsError, OSError) as exc:
        notes.append(f"{path}: {exc}")
        return None


# --- the catalog -----------------------------------------------------------------------------

# Fact quantization names -> the catalog's (vram.QUANTIZATIONS); others are left to the form.
CATALOG_QUANTIZATION = {
    "f32": "fp32",
    "f16": "fp16",
    "f8_e4m3": "fp8",
    "f8_e5m2": "fp8",
    "i8": "int8",
}
CATALOG_FIELDS = (
    "family", "parameters_billions", "quantization", "format", "context_length",
    "num_layers", "num_kv_heads", "head_dim", "size_bytes",
)  # fmt: skip


def catalog_fields(facts: ModelFacts) -> dict[str, Any]:
    """The LlmModel columns the facts can fill; a form field may override each."""
    values = {name: getattr(facts, name) for name in CATALOG_FIELDS}
    quantization = CATALOG_QUANTIZATION.get(facts.quantization or "", facts.quantization)
    values["quantization"] = quantization if quantization in QUANTIZATIONS else None
    values["format"] = facts.format if facts.format != "unknown" else None
    return {name: value for name, value in values.items() if value is not None}
