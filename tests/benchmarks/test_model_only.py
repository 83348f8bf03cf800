"""Model-only throughput: the same texts, batches and pipeline as end to end, without tokenizing.

The end-to-end / model-only target is only as good as its denominator: a model-only pass
over other texts, or other batches, has another length mix and so other sequence buckets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.contenders import Vigil
from benchmarks.measure import Budget, throughput_curves
from vigil.runtime import Classifier

TEXTS = [("short one" if i % 3 else "a much longer tweet, " * (1 + i % 5)) + f" {i}" for i in range(70)]


def _recorded_runs(contender: Vigil) -> list[list[np.ndarray]]:
    """Make the contender's classifier record the token ids of every model run, per pass."""
    runs: list[list[np.ndarray]] = []
    score = contender.classifier.score

    def recording(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        runs[-1].append(ids.copy())
        return score(ids, mask)

    contender.classifier.score = recording
    return runs


@pytest.fixture
def vigil(tiny_artifact: Path) -> Any:
    contender = Vigil(str(tiny_artifact), variant="fp32")
    contender.load()
    yield contender
    contender.classifier.close()


def test_the_timed_pass_runs_the_same_batches_without_tokenizing(vigil: Vigil, monkeypatch: pytest.MonkeyPatch) -> None:
    tokenized: list[int] = []
    encode = Classifier.encode
    monkeypatch.setattr(Classifier, "encode", lambda self, texts, *, start=0: tokenized.append(len(texts)) or encode(self, texts, start=start))
    runs = _recorded_runs(vigil)
    predict = vigil.classifier.predict

    def one_pass(texts: Any, *, batch_size: int) -> np.ndarray:
        runs.append([])
        tokenized.append(-1)  # marks where each pass starts
        return predict(texts, batch_size=batch_size)

    vigil.classifier.predict = one_pass
    seconds = vigil.time_model(TEXTS, 16)

    assert seconds > 0
    first, timed = runs
    assert len(first) == 5 and len(timed) == len(first)  # 70 texts in batches of 16
    assert all(np.array_equal(a, b) for a, b in zip(first, timed, strict=True))
    assert len({int((ids != 0).sum(axis=1).max()) for ids in first}) > 1  # grouped by length: buckets differ
    assert tokenized == [-1, 16, 16, 16, 16, 6, -1]  # the timed pass tokenized nothing
    assert vigil.classifier.encode.__func__ is Classifier.encode  # the classifier is itself again


def test_model_only_points_are_timed_on_the_end_to_end_texts(vigil: Vigil) -> None:
    runs = _recorded_runs(vigil)
    predict = vigil.classifier.predict

    def one_pass(texts: Any, *, batch_size: int) -> np.ndarray:
        runs.append([])
        return predict(texts, batch_size=batch_size)

    vigil.classifier.predict = one_pass
    curves = throughput_curves("vigil", vigil, TEXTS, [8, 32], Budget(0.01, 64), rate=1.0)

    assert [p["batch_size"] for p in curves["model_only"]] == [8, 32]
    assert [p["texts"] for p in curves["model_only"]] == [p["texts"] for p in curves["end_to_end"]]
    for point in range(2):  # end to end, then the two model-only passes, on the same texts
        end_to_end, *model_only = runs[3 * point : 3 * point + 3]
        assert all(np.array_equal(np.concatenate(end_to_end), np.concatenate(ids)) for ids in model_only)
