"""Write a tiny but real llama-architecture GGUF model that llama.cpp loads and runs on a CPU.

The weights are random, so the text it writes is noise, but every layer of a real runtime runs:
tokenizer, chat template, attention with grouped KV heads, sampling, streaming. The same seed
gives byte-identical files, so tests can rely on content addressing (digests, blob sharing).
"""

from __future__ import annotations

import string
from pathlib import Path

import gguf
import numpy as np

VOCAB_SIZE = 512
EMBEDDING = 64
BLOCKS = 2
HEADS = 4
KV_HEADS = 2
FEED_FORWARD = 128
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
_FIRST_BYTE_ID = 3
_SPACE = "\u2581"  # SentencePiece's word-boundary mark

DEFAULT_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ message['role'] }}: {{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
)


def byte_token_ids() -> list[int]:
    """Return the ids of the 256 byte tokens <0x00>..<0xFF>."""
    return list(range(_FIRST_BYTE_ID, _FIRST_BYTE_ID + 256))


def exact_count_logit_bias() -> dict[str, int]:
    """Return a logit_bias banning byte and control tokens, so max_tokens is met exactly.

    With random weights a byte token can start an unfinished UTF-8 character (the server then
    overshoots max_tokens by one) and </s> can end the answer early; banning both makes
    completion_tokens equal max_tokens.
    """
    banned = [UNK_ID, BOS_ID, EOS_ID, *byte_token_ids()]
    return {str(token): -100 for token in banned}


def _vocabulary() -> tuple[list[str], list[float], list[int]]:
    """Return tokens, scores and types of a SentencePiece-style vocabulary of VOCAB_SIZE."""
    types = gguf.TokenType
    tokens = ["<unk>", "<s>", "</s>"]
    kinds = [types.UNKNOWN, types.CONTROL, types.CONTROL]
    tokens += [f"<0x{byte:02X}>" for byte in range(256)]
    kinds += [types.BYTE] * 256
    letters = string.ascii_lowercase
    pieces = [_SPACE, *string.ascii_letters, *string.digits, *string.punctuation]
    pieces += [_SPACE + c for c in string.ascii_letters]
    pieces += [a + b for a in "etaoinshr" for b in letters]
    pieces = pieces[: VOCAB_SIZE - len(tokens)]
    tokens += pieces
    kinds += [types.NORMAL] * len(pieces)
    # Longer pieces score higher, so the tokenizer prefers merging into them.
    scores = [0.0] * (3 + 256) + [len(p) - i / VOCAB_SIZE for i, p in enumerate(pieces)]
    return tokens, scores, [int(k) for k in kinds]


def _tensors(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Return the llama tensors; numpy shapes are the reverse of ggml's."""

    def weights(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)

    kv = EMBEDDING // HEADS * KV_HEADS
    tensors = {"token_embd.weight": weights(VOCAB_SIZE, EMBEDDING)}
    for block in range(BLOCKS):
        prefix = f"blk.{block}."
        tensors |= {
            prefix + "attn_norm.weight": np.ones(EMBEDDING, dtype=np.float32),
            prefix + "attn_q.weight": weights(EMBEDDING, EMBEDDING),
            prefix + "attn_k.weight": weights(kv, EMBEDDING),
            prefix + "attn_v.weight": weights(kv, EMBEDDING),
            prefix + "attn_output.weight": weights(EMBEDDING, EMBEDDING),
            prefix + "ffn_norm.weight": np.ones(EMBEDDING, dtype=np.float32),
            prefix + "ffn_gate.weight": weights(FEED_FORWARD, EMBEDDING),
            prefix + "ffn_up.weight": weights(FEED_FORWARD, EMBEDDING),
            prefix + "ffn_down.weight": weights(EMBEDDING, FEED_FORWARD),
        }
    tensors["output_norm.weight"] = np.ones(EMBEDDING, dtype=np.float32)
    tensors["output.weight"] = weights(VOCAB_SIZE, EMBEDDING)
    return tensors


def write_tiny_llama_gguf(
    path: str | Path,
    *,
    seed: int = 0,
    context_length: int = 256,
    name: str = "spectr-tiny-llama",
    chat_template: str = DEFAULT_CHAT_TEMPLATE,
) -> Path:
    """Write a tiny llama GGUF (about 0.6 MB, f32 random weights) to path and return path."""
    path = Path(path)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(context_length)
    writer.add_embedding_length(EMBEDDING)
    writer.add_block_count(BLOCKS)
    writer.add_feed_forward_length(FEED_FORWARD)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_dimension_count(EMBEDDING // HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(VOCAB_SIZE)
    tokens, scores, types = _vocabulary()
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(UNK_ID)
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_chat_template(chat_template)
    for tensor_name, data in _tensors(np.random.default_rng(seed)).items():
        writer.add_tensor(tensor_name, data)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return path
