"""Long texts in any script: the prefix cut gives exactly the whole text's word pieces, and
the tokenizer only ever sees a short input, whether or not the text has ASCII boundaries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tokenizers import Tokenizer

from vigil.runtime import tokenizer as tokenizer_module
from vigil.runtime.tokenizer import encode, load_tokenizer

N = 200_000  # characters: long enough that tokenizing it whole would be costly
# What the tokenizer may be handed for one text: a prefix, widened once at most (after
# compaction, 30 word pieces never need more than about 31 words of 102 characters).
MOST_CHARS = 2 * tokenizer_module._PREFIX_CHARS * tokenizer_module._WIDEN

KINDS = {
    "ellipsis": "…" * N,
    "emoji": "😀" * N,
    "thai": "ภาษาไทยง่ายนิดเดียว" * (N // 19),
    "cjk": "中文字" * (N // 3),
    "dots": "." * N,
    "mixed": "a…😀ภาษา中. x" * (N // 12),
    "emoji then words": "😀" * N + " then some words" * 40,
    "thai then astral punctuation then words": "ภาษา" * (N // 4) + "\U00010100" + "word " * 40,
    "spaces then words": " \u3000\t" * (N // 3) + "words after spaces " * 10,
    "control characters inside a word": ("ab\x00\x01" * 30 + " ") * (N // 121),
    "long words of combining marks": ("e" + "\u0301" * 150 + " ") * (N // 152),
    "an emoji run too short to be unknown": ("😀" * 60 + "\x01" * 600 + " ") * (N // 661),
}


@pytest.fixture(scope="module")
def tokenizer(tiny_artifact: Path) -> Tokenizer:
    return load_tokenizer(tiny_artifact / "tokenizer.json", 32, 0)


class _Recording:
    """The tokenizer, recording the longest text it is asked to encode."""

    def __init__(self, inner: Tokenizer) -> None:
        self._inner = inner
        self.longest = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def encode_batch_fast(self, texts: list[str]) -> Any:
        self.longest = max([self.longest, *map(len, texts)])
        return self._inner.encode_batch_fast(texts)


@pytest.mark.parametrize("name", list(KINDS))
def test_a_long_text_of_any_script_is_encoded_exactly_from_a_short_input(tokenizer: Tokenizer, name: str) -> None:
    text = KINDS[name]
    recording = _Recording(tokenizer)
    ids, mask = encode(recording, [text, "short"])  # type: ignore[arg-type]
    whole = tokenizer.encode(text)
    assert ids[0].tolist() == whole.ids and mask[0].tolist() == whole.attention_mask
    assert ids[1].tolist() == tokenizer.encode("short").ids
    # Before, a text without an ASCII boundary was handed to the tokenizer whole.
    assert recording.longest <= MOST_CHARS


def test_the_separator_table_holds_every_character_the_tokenizer_splits_at(tokenizer: Tokenizer) -> None:
    """`_compact` relies on it: a missing separator could merge two words into one [UNK]."""
    table = tokenizer_module._separator_table()
    others = [chr(c) for c in np.flatnonzero(~table).tolist() if not 0xD800 <= c <= 0xDFFF]
    for start in range(0, len(others), 4096):
        chunk = others[start : start + 4096]
        # "a" c "a" is one pre-token for every c that does not split; spaces separate the probes.
        probes = tokenizer.normalizer.normalize_str(" ".join(f"a{c}a" for c in chunk))
        pieces = tokenizer.pre_tokenizer.pre_tokenize_str(probes)
        if len(pieces) != len(chunk):
            splitting = [c for c in chunk if tokenizer_module._ends_pre_token(tokenizer, c)]
            pytest.fail(f"the tokenizer splits at {[hex(ord(c)) for c in splitting]}, missing from the table")


def test_what_compaction_drops_or_merges_the_normalizer_drops_or_merges(tokenizer: Tokenizer) -> None:
    controls = [chr(c) for c in range(0xA0) if tokenizer_module._CONTROL.fullmatch(chr(c))]
    assert len(controls) == 65 - 3  # every Cc but tab, newline and carriage return
    assert all(tokenizer.normalizer.normalize_str(c) == "" for c in controls)
    spaces = [c for c in map(chr, range(0x3001)) if tokenizer_module._SPACE_RUN.fullmatch(c * 2)]
    assert all(tokenizer.normalizer.normalize_str(c) == " " for c in spaces)
