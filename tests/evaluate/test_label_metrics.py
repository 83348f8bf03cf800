"""vigil.evaluate.metrics on synthetic scores, checked against independent computations."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("sklearn")

import vigil.evaluate as evaluate_package
from vigil.evaluate import MIN_SUPPORT, Scores, compute_metrics, shortest_float32

from independent_metrics import averaged, confusion, mann_whitney_auc, precision_recall_f1

LABELS = ("a", "b", "c", "d")


def synthetic(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truth, float32 scores that lean towards it (with ties), and thresholds per label."""
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, len(LABELS))) < [0.1, 0.3, 0.5, 0.8]).astype(np.int8)
    scores = np.round(np.clip(0.4 * truth + rng.normal(0.3, 0.2, truth.shape), 0, 1), 3).astype(np.float32)
    return truth, scores, np.array([0.3, 0.4, 0.5, 0.6], dtype=np.float32)


def test_all_is_complete() -> None:
    public = {name for name in vars(evaluate_package) if not name.startswith("_")}
    assert set(evaluate_package.__all__) <= public
    expected = {"read_labelled", "evaluate", "calibrate", "write_calibration", "compute_metrics"}
    assert expected <= set(evaluate_package.__all__)


def test_every_figure_equals_an_independent_computation() -> None:
    truth, scores, thresholds = synthetic()
    decisions = scores >= thresholds
    metrics = compute_metrics(LABELS, truth, scores, decisions, thresholds)

    precision, recall, f1 = precision_recall_f1(*confusion(truth, decisions))
    for j, label in enumerate(LABELS):
        m = metrics.labels[label]
        assert (m.positives, m.negatives) == (truth[:, j].sum(), len(truth) - truth[:, j].sum())
        assert m.threshold == pytest.approx(thresholds[j])
        assert m.scores.roc_auc == pytest.approx(mann_whitney_auc(truth[:, j], scores[:, j]), abs=1e-12)
        assert (m.scores.precision, m.scores.recall, m.scores.f1) == pytest.approx((precision[j], recall[j], f1[j]))
    expected = averaged(truth, decisions)
    for average in ("micro", "macro"):
        got = getattr(metrics, average)
        assert (got.precision, got.recall, got.f1) == pytest.approx(
            (expected[average]["precision"], expected[average]["recall"], expected[average]["f1"])
        )
    assert metrics.micro.roc_auc == pytest.approx(mann_whitney_auc(truth, scores), abs=1e-12)
    per_label_auc = [mann_whitney_auc(truth[:, j], scores[:, j]) for j in range(len(LABELS))]
    assert metrics.macro.roc_auc == pytest.approx(np.mean(per_label_auc), abs=1e-12)
    assert metrics.notes == ()


def test_one_class_label_has_a_null_roc_auc_with_its_reason() -> None:
    truth, scores, thresholds = synthetic()
    truth[:, 1] = 0
    truth[:, 3] = 1
    metrics = compute_metrics(LABELS, truth, scores, scores >= thresholds, thresholds)

    assert metrics.labels["b"].scores.roc_auc is None
    assert metrics.labels["d"].scores.roc_auc is None
    assert metrics.notes == (
        "ROC-AUC of b is undefined: all its tweets are negative",
        "ROC-AUC of d is undefined: all its tweets are positive",
        "the macro ROC-AUC averages the 2 labels where it is defined",
    )
    defined = [mann_whitney_auc(truth[:, j], scores[:, j]) for j in (0, 2)]
    assert metrics.macro.roc_auc == pytest.approx(np.mean(defined), abs=1e-12)
    assert metrics.micro.roc_auc == pytest.approx(mann_whitney_auc(truth, scores), abs=1e-12)
    assert metrics.labels["b"].scores.f1 == 0.0  # zero_division=0: no positives to find
    json.dumps(metrics.to_dict())  # None becomes null


def test_roc_auc_is_null_everywhere_when_nothing_is_positive() -> None:
    truth, scores, thresholds = synthetic()
    metrics = compute_metrics(LABELS, np.zeros_like(truth), scores, scores >= thresholds, thresholds)
    assert metrics.micro.roc_auc is None and metrics.macro.roc_auc is None
    assert all(m.scores.roc_auc is None for m in metrics.labels.values())


@pytest.mark.parametrize(("positives", "negatives", "warned"), [
    (MIN_SUPPORT, MIN_SUPPORT, False),
    (MIN_SUPPORT - 1, MIN_SUPPORT + 1, True),
    (MIN_SUPPORT + 1, MIN_SUPPORT - 1, True),
])
def test_small_support_warns(positives: int, negatives: int, warned: bool) -> None:
    truth = np.array([[1]] * positives + [[0]] * negatives, dtype=np.int8)
    scores = np.linspace(0, 1, len(truth), dtype=np.float32)[:, None]
    metrics = compute_metrics(("a",), truth, scores, scores >= 0.5, np.array([0.5], dtype=np.float32))
    expected = (
        f"a: {positives:,} positive and {negatives:,} negative tweets; the model card trusts a label's figures "
        "only with at least 5,000 of each",
    )
    assert metrics.warnings == (expected if warned else ())


def test_differences_figure_by_figure() -> None:
    truth, scores, thresholds = synthetic()
    mine = compute_metrics(LABELS, truth, scores, scores >= thresholds, thresholds)
    theirs = compute_metrics(LABELS, truth, scores * 0.9, scores * 0.9 >= thresholds, thresholds)
    difference = mine.minus(theirs)
    assert difference["labels"]["a"]["f1"] == pytest.approx(mine.labels["a"].scores.f1 - theirs.labels["a"].scores.f1)
    assert difference["macro"]["recall"] == pytest.approx(mine.macro.recall - theirs.macro.recall)
    assert Scores(None, 1, 1, 1).minus(Scores(0.5, 0, 0, 0)) == Scores(None, 1, 1, 1)


def test_shapes_must_agree() -> None:
    truth, scores, thresholds = synthetic()
    with pytest.raises(ValueError, match=r"must each be \[n, 4\]"):
        compute_metrics(LABELS, truth, scores[:, :3], scores >= thresholds, thresholds)


def test_thresholds_are_reported_as_their_shortest_float32() -> None:
    value = np.float32(0.80736876)
    assert shortest_float32(value) == 0.80736876
    assert np.float32(shortest_float32(value)) == value
