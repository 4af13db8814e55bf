"""The tiny GGUF writer: deterministic bytes and the shapes llama.cpp expects."""

from __future__ import annotations

import hashlib
from pathlib import Path

import gguf

from tests.support.tiny_gguf import byte_token_ids, write_tiny_llama_gguf


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    first = write_tiny_llama_gguf(tmp_path / "a.gguf")
    again = write_tiny_llama_gguf(tmp_path / "b.gguf")
    other = write_tiny_llama_gguf(tmp_path / "c.gguf", seed=1)
    assert digest(first) == digest(again) != digest(other)


def test_metadata_and_tokenizer(tmp_path: Path) -> None:
    reader = gguf.GGUFReader(write_tiny_llama_gguf(tmp_path / "m.gguf", context_length=128))
    field = reader.fields
    assert field["general.architecture"].contents() == "llama"
    assert field["llama.context_length"].contents() == 128
    assert field["llama.attention.head_count_kv"].contents() == 2
    tokens = field["tokenizer.ggml.tokens"].contents()
    assert len(tokens) == len(set(tokens)) == 512
    assert tokens[:3] == ["<unk>", "<s>", "</s>"]
    assert [tokens[i] for i in byte_token_ids()[:2]] == ["<0x00>", "<0x01>"]
    assert "tokenizer.chat_template" in field
    shapes = {t.name: list(t.shape) for t in reader.tensors}
    assert shapes["blk.1.attn_k.weight"] == [64, 32]  # ggml order: n_embd, n_embd_gqa
    assert shapes["output.weight"] == [64, 512]
