"""`clean_tweet` against expected outputs written out by hand from the model card's code."""

from __future__ import annotations

import pytest
from model_card import card_clean_tweet

from vigil.runtime import clean_tweet

CASES = [
    # "RT " anywhere, not only as a prefix; "RT" without its space stays.
    ("RT @user: hello", "hello"),
    ("I said PART ways", "I said PAways"),
    ("ART", "ART"),
    ("a RT RT b", "a b"),
    ("RT@user: x", "x"),  # the mention goes first, then the "RT " it leaves
    ("http://a RT b", "b"),  # the link goes first, then "RT "
    # Mentions take the colon and stop at anything outside [A-Za-z0-9_:].
    ("@user: hi @bob_1:x there", "hi  there"),
    ("mail me@example.com now", "mail me.com now"),
    ("@ñandú hola", "@ñandú hola"),
    ("@user's cat", "'s cat"),
    ("@", "@"),
    # Links run to the next whitespace; a bare "http" has nothing after it and stays.
    ("see https://t.co/abc now", "see  now"),
    ("news..http", "news..http"),
    ("news..http…", "news.."),
    ("httpx", ""),
    ("HTTP://A.B", "HTTP://A.B"),
    # Entities are unescaped once: double-escaped ones keep one level.
    ("Tom &amp;amp; Jerry", "Tom &amp; Jerry"),
    ("&lt;3 &gt;", "<3 >"),
    ("&#64;user hi", "hi"),  # unescaped before the mention is removed
    ("&amp;#64;user", "&#64;user"),
    # Newlines become spaces before unescaping, so an escaped newline survives.
    ("line one\nline two\n", "line one line two"),
    ("RT\n@user: x", "x"),
    ("a&#10;b", "a\nb"),
    ("\n\n", ""),
    ("  tabs\tstay\t ", "tabs\tstay"),
]


@pytest.mark.parametrize("raw, expected", CASES)
def test_clean_tweet_matches_literal_expected_output(raw: str, expected: str) -> None:
    assert clean_tweet(raw) == expected


@pytest.mark.parametrize("raw, expected", CASES)
def test_the_cards_code_gives_the_same_literal_output(raw: str, expected: str) -> None:
    """The expected outputs are the card's, not a copy of vigil's behaviour."""
    assert card_clean_tweet(raw) == expected


def test_clean_tweet_agrees_with_the_card_on_every_vendored_tweet(shared_tweets: dict[str, list[str]]) -> None:
    texts = [t for lines in shared_tweets.values() for t in lines]
    assert [clean_tweet(t) for t in texts] == [card_clean_tweet(t) for t in texts]
