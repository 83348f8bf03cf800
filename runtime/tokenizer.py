"""WordPiece tokenization to the artifact's fixed shape, with the `tokenizers` library only.

The graphs have a static sequence axis, so every text becomes exactly `sequence_length`
ids: truncated like the card's `pipeline(..., truncation=True)` and right-padded (the fused
Attention kernel assumes right padding). A `tokenizers.Tokenizer` carries mutable
truncation/padding state and is not safe to share between threads, so callers that tokenize
on several threads use `ThreadLocalTokenizer`, which loads one per thread.

Two inputs need care to be scored exactly like the reference and still fast:

- A megabyte-long text would be tokenized in full only to keep its first 30 word pieces.
  `encode` tokenizes a prefix instead, cut just after a character that always ends a
  pre-token (see `_BOUNDARY`), so the prefix's word pieces are exactly the first word
  pieces of the whole text; if the prefix does not fill the sequence, a longer one is tried.
- A lone surrogate ("\\ud800", e.g. from JSON or `surrogateescape` decoding) cannot cross
  into Rust. It becomes U+FFFD, which BERT's normalizer then drops like any invalid
  character; a surrogate *pair* becomes the character it encodes.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence

import numpy as np
from tokenizers import Tokenizer

from .errors import ArtifactError

__all__ = ["load_tokenizer", "encode", "ThreadLocalTokenizer"]

# Far longer than any tweet, far shorter than the texts worth cutting. A prefix this long
# that still does not fill the sequence is retried `_WIDEN` times longer.
_PREFIX_CHARS = 2048
_WIDEN = 16

# Characters after which BERT's pre-tokenizer always ends a pre-token, whatever follows:
# ASCII whitespace (split on), ASCII punctuation (isolated) and CJK ideographs (isolated
# by the model's `handle_chinese_chars`). The normalizer works character by character, so
# cutting just after one of them leaves every earlier pre-token, and so every earlier word
# piece, as is. A long text with none of them (say, a megabyte of "…") is tokenized whole.
_BOUNDARY = re.compile(r"[\t\n\r !-/:-@\[-`{-~\u4e00-\u9fff]")


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
    """Token ids and attention mask, both int64 of shape [len(texts), sequence_length].

    Equal to tokenizing each whole text and truncating, however long the text.
    """
    texts = list(texts)
    limit = _PREFIX_CHARS
    long = [i for i, text in enumerate(texts) if len(text) > limit]
    inputs = texts.copy()
    for i in long:
        inputs[i] = _prefix(texts[i], limit)
    ids, mask = _encode_batch(tokenizer, inputs)
    # A prefix that does not fill the sequence may have cut word pieces that count: widen it.
    short = [i for i in long if len(inputs[i]) < len(texts[i]) and not mask[i, -1]]
    while short:
        limit *= _WIDEN
        for i in short:
            inputs[i] = _prefix(texts[i], limit)
        ids[short], mask[short] = _encode_batch(tokenizer, [inputs[i] for i in short])
        short = [i for i in short if len(inputs[i]) < len(texts[i]) and not mask[i, -1]]
    return ids, mask


def _prefix(text: str, limit: int) -> str:
    """TEXT up to and including the first pre-token boundary at or after LIMIT characters."""
    boundary = _BOUNDARY.search(text, limit)
    return text if boundary is None else text[: boundary.end()]


def _encode_batch(tokenizer: Tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    try:
        encodings = tokenizer.encode_batch(texts)
    except TypeError:  # what tokenizers raises for a str holding a lone surrogate
        encodings = tokenizer.encode_batch([_replace_surrogates(text) for text in texts])
    if not encodings:
        empty = np.zeros((0, tokenizer.padding["length"]), dtype=np.int64)
        return empty, empty.copy()
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    return ids, mask


def _replace_surrogates(text: str) -> str:
    """Join surrogate pairs into their character and turn lone surrogates into U+FFFD."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


class ThreadLocalTokenizer:
    """Encodes on whichever thread calls it, with that thread's own tokenizer.

    Loading takes ~0.1 s, so each thread loads once and keeps its tokenizer for its
    lifetime; the constructor loads the caller's at once, so a broken file fails early.
    """

    def __init__(self, path: str | os.PathLike[str], sequence_length: int, pad_id: int) -> None:
        self._args = (path, sequence_length, pad_id)
        self._local = threading.local()
        self.tokenizer()

    def tokenizer(self) -> Tokenizer:
        """The calling thread's tokenizer, loaded on its first use."""
        tokenizer = getattr(self._local, "tokenizer", None)
        if tokenizer is None:
            tokenizer = self._local.tokenizer = load_tokenizer(*self._args)
        return tokenizer

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """`encode` with the calling thread's tokenizer."""
        return encode(self.tokenizer(), texts)
