"""WordPiece tokenization to the artifact's fixed shape, with the `tokenizers` library only.

The graphs have a static sequence axis, so every text becomes exactly `sequence_length`
ids: truncated like the card's `pipeline(..., truncation=True)` and right-padded (the fused
Attention kernel assumes right padding). A `tokenizers.Tokenizer` carries mutable
truncation/padding state and is not safe to share between threads, so callers that tokenize
on several threads load one per thread.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from tokenizers import Tokenizer

from .errors import ArtifactError

__all__ = ["load_tokenizer", "encode"]


def load_tokenizer(path: str | os.PathLike[str], sequence_length: int, pad_id: int) -> Tokenizer:
    """Load `tokenizer.json` set to truncate and right-pad to exactly `sequence_length`."""
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for unreadable files
        raise ArtifactError(f"cannot load tokenizer {path}: {exc}") from exc
    pad_token = tokenizer.id_to_token(pad_id)
    if pad_token is None:
        raise ArtifactError(f"tokenizer {path} has no token with the pad id {pad_id}")
    tokenizer.enable_truncation(max_length=sequence_length)
    tokenizer.enable_padding(direction="right", length=sequence_length, pad_id=pad_id, pad_token=pad_token)
    return tokenizer


def encode(tokenizer: Tokenizer, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and attention mask, both int64 of shape [len(texts), sequence_length]."""
    encodings = tokenizer.encode_batch(list(texts))
    if not encodings:
        empty = np.zeros((0, tokenizer.padding["length"]), dtype=np.int64)
        return empty, empty.copy()
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    return ids, mask
