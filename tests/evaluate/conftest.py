"""The real tweets and the tiny stand-in's scores of them, from which labelled files are drawn.

Scores are fp32, the variant the CPU runs on the tiny stand-in (export leaves its int8 out).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tweets(shared_tweets: dict[str, list[str]]) -> list[str]:
    """Every line of data/tweets, language after language."""
    return [tweet for language in shared_tweets.values() for tweet in language]


@pytest.fixture(scope="session")
def scores(tiny_artifact: Path, tweets: list[str]) -> np.ndarray:
    """float32 [n, 6]: the tiny artifact's fp32 probabilities of every tweet."""
    from vigil.runtime import Classifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stand-in warning
        clf = Classifier.open(tiny_artifact, provider="cpu", variant="fp32")
    with clf:
        return clf.predict(tweets, batch_size=256)
