"""Model-only throughput: the same texts, batches and pipeline as end to end, without tokenizing.

The end-to-end / model-only target is only as good as its denominator: a model-only pass
over other texts, or other batches, has another length mix and so other sequence buckets.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from benchmarks.contenders import Vigil
from benchmarks.measure import Budget, throughput_curves
from vigil.runtime import Classifier

TEXTS = [("short one" if i % 3 else "a much longer tweet, " * (1 + i % 5)) + f" {i}" for i in range(70)]


class Calls:
    """What a Classifier was asked, pass by pass: the texts it tokenized and the token ids it scored."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.passes: list[dict[str, list]] = []
        encode, score, predict = Classifier.encode, Classifier.score, Classifier.predict

        def encoding(classifier: Classifier, texts: list[str], *, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
            self.passes[-1]["tokenized"].append(len(texts))
            return encode(classifier, texts, start=start)

        def scoring(classifier: Classifier, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            self.passes[-1]["scored"].append(ids.copy())
            return score(classifier, ids, mask)

        def predicting(classifier: Classifier, texts: list[str], **options: object) -> np.ndarray:
            self.passes.append({"tokenized": [], "scored": []})
            return predict(classifier, texts, **options)

        for name, method in (("encode", encoding), ("score", scoring), ("predict", predicting)):
            monkeypatch.setattr(Classifier, name, method)


@pytest.fixture
def vigil(tiny_artifact: Path) -> Iterator[Vigil]:
    contender = Vigil(str(tiny_artifact), variant="fp32")
    contender.load()
    yield contender
    contender.classifier.close()


def test_the_timed_pass_scores_the_end_to_end_batches_and_tokenizes_nothing(
    vigil: Vigil, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls(monkeypatch)
    vigil.predict(TEXTS, 16)
    seconds = vigil.time_model(TEXTS, 16)

    end_to_end, recording, timed = calls.passes
    assert len(end_to_end["scored"]) == 5  # 70 texts in batches of 16
    assert len({int((ids != 0).sum(axis=1).max()) for ids in end_to_end["scored"]}) > 1  # grouped by length
    assert recording == {"tokenized": [16, 16, 16, 16, 6], "scored": []}  # the model is left out of it
    assert timed["tokenized"] == []
    assert all(np.array_equal(a, b) for a, b in zip(end_to_end["scored"], timed["scored"], strict=True))
    assert seconds > 0
    assert not {"encode", "score"} & set(vars(vigil.classifier))  # the classifier is itself again


def test_model_only_points_are_timed_on_the_end_to_end_texts(vigil: Vigil, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls(monkeypatch)
    curves = throughput_curves("vigil", vigil, TEXTS, [8, 32], Budget(0.01, 64), rate=1.0)

    assert [p["batch_size"] for p in curves["model_only"]] == [8, 32]
    assert [p["texts"] for p in curves["model_only"]] == [p["texts"] for p in curves["end_to_end"]]
    assert len(calls.passes) == 6  # per point: end to end, recording, timed
    for point in range(2):
        end_to_end, _, timed = calls.passes[3 * point : 3 * point + 3]
        assert np.array_equal(np.concatenate(end_to_end["scored"]), np.concatenate(timed["scored"]))
