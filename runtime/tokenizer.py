"""WordPiece tokenization to the artifact's fixed shape, with the `tokenizers` library only.

The graphs have a static sequence axis, so every text becomes exactly `sequence_length`
ids: truncated like the card's `pipeline(..., truncation=True)` and right-padded (the fused
Attention kernel assumes right padding). A `tokenizers.Tokenizer` carries mutable
truncation/padding state, set once by `load_tokenizer` and never changed after: encoding
only reads it, so one tokenizer serves every thread (`SharedTokenizer`). Encoding
releases the GIL, so threads encode in parallel; one tokenizer per thread would cost
~0.2 s and ~10 MiB each. It runs through `encode_batch_fast`, which skips the character
offsets nothing here reads: the same ids and masks in 0.83x the time (smaller-LaBSE's
tokenizer, 2 cores, tweets in batches of 1, 16 and 64 alike).

Two inputs need care to be scored exactly like the reference and still fast:

- A megabyte-long text would be tokenized in full only to keep its first 30 word pieces,
  at up to 4 us a character. A text longer than `_PREFIX_CHARS` is first compacted in
  ways that keep its every word piece (`_compact`): runs of whitespace become one space,
  control characters go (the normalizer drops them), and a run of word characters whose
  first ones already make more than `max_input_chars_per_word` (100) becomes that many
  "x" plus one: a word that long is one [UNK] however long it is. Then
  `encode` tokenizes a prefix, cut just after a character that ends a pre-token (any
  script: ASCII or Unicode punctuation, whitespace, CJK, each confirmed by the tokenizer
  itself), so the prefix's word pieces are exactly the first word pieces of the whole
  text; if the prefix does not fill the sequence, a longer one is tried. Whatever the
  script, a megabyte then costs milliseconds.
- A lone surrogate ("\\ud800", e.g. from JSON or `surrogateescape` decoding) cannot cross
  into Rust. It becomes U+FFFD, which BERT's normalizer then drops like any invalid
  character; a surrogate *pair* becomes the character it encodes.
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from collections.abc import Sequence

import numpy as np
from tokenizers import Tokenizer

from .errors import ArtifactError

__all__ = ["load_tokenizer", "encode", "SharedTokenizer"]

# Longer than most tweets (280 characters at most), and enough for 30 word pieces of any
# ordinary text: a dot costs a pre-token, so a longer prefix of dots would cost more. A
# prefix this long that still does not fill the sequence is retried `_WIDEN` times longer.
_PREFIX_CHARS = 256
_WIDEN = 16

# Candidate cuts tried before giving up on cutting (each is confirmed by the tokenizer).
_CUT_TRIES = 64

_TABLE_SIZE = 0x30000  # code points `_separator_table` classifies

# What BERT's normalizer turns into a space (after dropping control characters): the
# Unicode White_Space characters that are not control characters.
_WHITESPACE = "\t\n\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
    "\u2028\u2029\u202f\u205f\u3000"
# Punctuation in the Unicode tables tokenizers was built with, no longer in Python's.
_FORMERLY_PUNCTUATION = [
    0x166D,  # CANADIAN SYLLABICS CHI SIGN: Po until Unicode 12, then So
    0x111C9,  # SHARADA SANDHI MARK: Po until Unicode 11, then Mn
]
_SPACE_RUN = re.compile(f"[{_WHITESPACE}]{{2,}}")
# Control characters (Cc) other than tab and newlines: the normalizer drops them.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]+")
# Ideographs that `handle_chinese_chars` isolates (tokenizers' `is_chinese_char`).
_CJK = [(0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0x2F800, 0x2FA1F)]


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
    for i in long:
        texts[i] = _compact(tokenizer, texts[i])
    inputs = texts.copy()
    for i in long:
        inputs[i] = _prefix(tokenizer, texts[i], limit)
    ids, mask = _encode_batch(tokenizer, inputs)
    # A prefix that does not fill the sequence may have cut word pieces that count: widen it.
    short = [i for i in long if len(inputs[i]) < len(texts[i]) and not mask[i, -1]]
    while short:
        limit *= _WIDEN
        for i in short:
            inputs[i] = _prefix(tokenizer, texts[i], limit)
        ids[short], mask[short] = _encode_batch(tokenizer, [inputs[i] for i in short])
        short = [i for i in short if len(inputs[i]) < len(texts[i]) and not mask[i, -1]]
    return ids, mask


def _prefix(tokenizer: Tokenizer, text: str, limit: int) -> str:
    """TEXT up to and including the first pre-token boundary at or after LIMIT characters."""
    positions = _separator_positions(text)
    for position in positions[positions >= limit][:_CUT_TRIES].tolist():
        if _ends_pre_token(tokenizer, text[position]):
            return text[: position + 1]
    return text


def _compact(tokenizer: Tokenizer, text: str) -> str:
    """TEXT, shorter, with exactly the same word pieces (see the module docstring)."""
    text = _CONTROL.sub("", text)
    text = _SPACE_RUN.sub(" ", text)
    most = tokenizer.model.max_input_chars_per_word
    # Runs of characters between separators: each lies within one word.
    bounds = np.concatenate(([-1], _separator_positions(text), [len(text)]))
    pieces, done = [], 0
    for k in np.flatnonzero(np.diff(bounds) - 1 > most + 1).tolist():
        start, end = int(bounds[k]) + 1, int(bounds[k + 1])
        # The normalizer works character by character: a head's normalized length bounds the word's.
        if len(tokenizer.normalizer.normalize_str(text[start : start + most + 1])) > most:
            pieces += [text[done:start], "x" * (most + 1)]
            done = end
    return "".join([*pieces, text[done:]])


def _ends_pre_token(tokenizer: Tokenizer, char: str) -> bool:
    """Whether the tokenizer always ends a pre-token after CHAR: it splits "a" CHAR "a"."""
    normalized = tokenizer.normalizer.normalize_str(f"a{char}a")
    return len(tokenizer.pre_tokenizer.pre_tokenize_str(normalized)) > 1


def _separator_positions(text: str) -> np.ndarray:
    """Indices of the characters of TEXT that may end a pre-token (see `_separator_table`)."""
    table = _separator_table()
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    return np.flatnonzero(table[np.minimum(points, len(table) - 1)])


@functools.cache
def _separator_table() -> np.ndarray:
    """Per code point below U+30000, whether it may end a BERT pre-token: whitespace, ASCII
    and Unicode punctuation (as Python's Unicode database has it) or a CJK ideograph.

    It must hold every character the tokenizer splits at, or `_compact` could merge two
    words into one [UNK]; a test checks that against the tokenizer for every code point
    in the table (none above it is punctuation). Extra characters are harmless: a cut is
    confirmed by `_ends_pre_token`, and a run they end is only left longer.
    """
    table = np.zeros(_TABLE_SIZE, dtype=bool)
    table[[c for c in range(_TABLE_SIZE) if unicodedata.category(chr(c)).startswith("P")]] = True
    table[[c for c in range(0x21, 0x7F) if not chr(c).isalnum()]] = True
    table[[ord(c) for c in _WHITESPACE]] = True
    table[_FORMERLY_PUNCTUATION] = True
    for first, last in _CJK:
        table[first : last + 1] = True
    return table


def _encode_batch(tokenizer: Tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    try:
        encodings = tokenizer.encode_batch_fast(texts)
    except TypeError:  # what tokenizers raises for a str holding a lone surrogate
        encodings = tokenizer.encode_batch_fast([_replace_surrogates(text) for text in texts])
    if not encodings:
        empty = np.zeros((0, tokenizer.padding["length"]), dtype=np.int64)
        return empty, empty.copy()
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    return ids, mask


def _replace_surrogates(text: str) -> str:
    """Join surrogate pairs into their character and turn lone surrogates into U+FFFD."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


class SharedTokenizer:
    """One tokenizer for every thread: loaded once, its settings never changed after.

    The Rust tokenizer is thread-safe for encoding (`&self`, the GIL released); only the
    `enable_*` setters mutate it, and nothing calls them after `load_tokenizer`.
    """

    def __init__(self, path: str | os.PathLike[str], sequence_length: int, pad_id: int) -> None:
        self.tokenizer = load_tokenizer(path, sequence_length, pad_id)

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """`encode` with the shared tokenizer, from any thread."""
        return encode(self.tokenizer, texts)
