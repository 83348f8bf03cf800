"""The model card's own `clean_tweet`, written out here independently of vigil's.

Reconstructed from the card's code: newlines become spaces, HTML entities are unescaped
once, mentions (`@[A-Za-z0-9_:]+`, colon included) and links (`http\\S+`) are removed,
then every "RT " wherever it occurs, and the result is stripped, in that order.
"""

from __future__ import annotations

import html
import re


def card_clean_tweet(tweet: str) -> str:
    text = tweet.replace("\n", " ")
    text = html.unescape(text)
    text = re.sub("@[A-Za-z0-9_:]+", "", text)
    text = re.sub(r"http\S+", "", text)
    text = text.replace("RT ", "")
    return text.strip()
