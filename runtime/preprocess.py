"""The model card's tweet cleaning, reproduced exactly.

The classifier was fine-tuned on tweets cleaned by the card's `clean_tweet`; scoring text
cleaned any other way shifts its inputs away from training. Parity beats taste here, so the
quirks stay: every "RT " is removed wherever it occurs, the mention pattern also eats ':',
and links are cut at the first whitespace.
"""

from __future__ import annotations

import html
import re

__all__ = ["clean_tweet"]

_MENTION = re.compile(r"@[A-Za-z0-9_:]+")
_LINK = re.compile(r"http\S+")


def clean_tweet(text: str) -> str:
    """Clean one tweet the way the model card's `clean_tweet` does before training."""
    text = text.replace("\n", " ")
    text = html.unescape(text)
    text = _MENTION.sub("", text)
    text = _LINK.sub("", text)
    text = text.replace("RT ", "")
    return text.strip()
