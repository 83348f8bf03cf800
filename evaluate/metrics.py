"""Per-label and averaged figures of a multi-label classifier, all computed by scikit-learn.

For each label: ROC-AUC of the probabilities, and F1, precision and recall of the decisions
(`zero_division=0`); then their micro averages (every label's rows pooled) and macro
averages (the mean over labels).

ROC-AUC compares positives with negatives, so it is undefined for a label whose rows are
all of one class: that label's value is None with a note saying why, and the macro average
is taken over the labels where it is defined (None if there are none). The micro average
pools every label, so it is undefined only if the whole matrix holds one class.

The model card trusts a label's figures only with at least `MIN_SUPPORT` positives and as
many negatives; a label with fewer gets a warning, not an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

__all__ = [
    "MIN_SUPPORT",
    "Scores",
    "LabelMetrics",
    "Metrics",
    "compute_metrics",
    "support_warnings",
    "shortest_float32",
]

MIN_SUPPORT = 5000


@dataclass(frozen=True)
class Scores:
    """The four figures reported for a label or an average; `roc_auc` None where undefined."""

    roc_auc: float | None
    f1: float
    precision: float
    recall: float

    def minus(self, other: Scores) -> Scores:
        """The differences, figure by figure (ROC-AUC None unless both are defined)."""
        return Scores(
            roc_auc=None if self.roc_auc is None or other.roc_auc is None else self.roc_auc - other.roc_auc,
            f1=self.f1 - other.f1,
            precision=self.precision - other.precision,
            recall=self.recall - other.recall,
        )


@dataclass(frozen=True)
class LabelMetrics:
    """One label's threshold, class counts and scores."""

    threshold: float
    positives: int
    negatives: int
    scores: Scores


@dataclass(frozen=True)
class Metrics:
    """Figures of one set of rows: tweets, or groups of tweets.

    Attributes:
        unit: What a row is, for messages: "tweets" or "groups".
        count: Number of rows.
        labels: Per label, in label order.
        micro, macro: The averages over labels.
        notes: Why a ROC-AUC is undefined, and what the macro ROC-AUC then averages.
        warnings: Labels with fewer than MIN_SUPPORT positives or negatives.
    """

    unit: str
    count: int
    labels: dict[str, LabelMetrics]
    micro: Scores
    macro: Scores
    notes: tuple[str, ...]
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: per label, its threshold, counts and scores side by side."""
        return {
            "unit": self.unit,
            "count": self.count,
            "labels": {
                name: {"threshold": m.threshold, "positives": m.positives, "negatives": m.negatives, **asdict(m.scores)}
                for name, m in self.labels.items()
            },
            "micro": asdict(self.micro),
            "macro": asdict(self.macro),
            "notes": list(self.notes),
            "warnings": list(self.warnings),
        }

    def minus(self, other: Metrics) -> dict[str, Any]:
        """The score differences self - OTHER per label and per average, JSON-ready."""
        return {
            "labels": {name: asdict(m.scores.minus(other.labels[name].scores)) for name, m in self.labels.items()},
            "micro": asdict(self.micro.minus(other.micro)),
            "macro": asdict(self.macro.minus(other.macro)),
        }


def compute_metrics(
    labels: Sequence[str],
    truth: np.ndarray,
    probabilities: np.ndarray,
    decisions: np.ndarray,
    thresholds: np.ndarray,
    *,
    unit: str = "tweets",
) -> Metrics:
    """Figures of PROBABILITIES and DECISIONS against TRUTH, all [n, n_labels].

    DECISIONS are taken as given (e.g. `Classifier.decide`, or `aggregate`'s flags), so the
    rule that turns a probability into a decision lives in the runtime only; THRESHOLDS
    ([n_labels]) are only reported.
    """
    truth = np.asarray(truth)
    if not truth.shape == np.shape(probabilities) == np.shape(decisions) == (len(truth), len(labels)):
        raise ValueError(
            f"truth, probabilities and decisions must each be [n, {len(labels)}], "
            f"got {truth.shape}, {np.shape(probabilities)} and {np.shape(decisions)}"
        )
    positives = truth.sum(axis=0).astype(int)
    negatives = len(truth) - positives
    defined = (positives > 0) & (negatives > 0)  # ROC-AUC needs both classes
    roc_auc = [
        float(roc_auc_score(truth[:, j], probabilities[:, j])) if defined[j] else None for j in range(len(labels))
    ]
    f1, precision, recall = _thresholded(truth, decisions, average=None)
    return Metrics(
        unit=unit,
        count=len(truth),
        labels={
            label: LabelMetrics(
                threshold=shortest_float32(thresholds[j]),
                positives=int(positives[j]),
                negatives=int(negatives[j]),
                scores=Scores(roc_auc[j], float(f1[j]), float(precision[j]), float(recall[j])),
            )
            for j, label in enumerate(labels)
        },
        micro=Scores(_micro_roc_auc(truth, probabilities), *map(float, _thresholded(truth, decisions, "micro"))),
        macro=Scores(
            _macro_roc_auc(truth, probabilities, defined), *map(float, _thresholded(truth, decisions, "macro"))
        ),
        notes=_undefined_notes(labels, positives, defined, unit),
        warnings=support_warnings(labels, positives, negatives, unit),
    )


def support_warnings(
    labels: Sequence[str], positives: Iterable[int], negatives: Iterable[int], unit: str
) -> tuple[str, ...]:
    """One warning per label with fewer than MIN_SUPPORT positives or negatives."""
    return tuple(
        f"{label}: {p:,} positive and {n:,} negative {unit}; the model card trusts a label's "
        f"figures only with at least {MIN_SUPPORT:,} of each"
        for label, p, n in zip(labels, positives, negatives)
        if min(p, n) < MIN_SUPPORT
    )


def shortest_float32(value: float | np.floating) -> float:
    """A float32 threshold as the shortest decimal that reads back as the same float32.

    Thresholds are float32 in the runtime: 0.8074123 says what 0.807412326335907 says.
    """
    return float(str(np.float32(value)))


def _thresholded(truth: np.ndarray, decisions: np.ndarray, average: str | None) -> list[Any]:
    """F1, precision and recall: one value each for an average, an array per label for None."""
    metrics = (f1_score, precision_score, recall_score)
    return [metric(truth, decisions, average=average, zero_division=0) for metric in metrics]


def _micro_roc_auc(truth: np.ndarray, probabilities: np.ndarray) -> float | None:
    """ROC-AUC of every label's rows pooled; None if the pool holds one class only."""
    if not 0 < truth.sum() < truth.size:
        return None
    return float(roc_auc_score(truth, probabilities, average="micro"))


def _macro_roc_auc(truth: np.ndarray, probabilities: np.ndarray, defined: np.ndarray) -> float | None:
    """Mean ROC-AUC over the labels where it is DEFINED; None if it is nowhere defined."""
    if not defined.any():
        return None
    return float(roc_auc_score(truth[:, defined], probabilities[:, defined], average="macro"))


def _undefined_notes(labels: Sequence[str], positives: np.ndarray, defined: np.ndarray, unit: str) -> tuple[str, ...]:
    """Why each undefined ROC-AUC is undefined, and what the macro average then covers."""
    notes = [
        f"ROC-AUC of {label} is undefined: all its {unit} are {'positive' if count else 'negative'}"
        for label, count, ok in zip(labels, positives, defined)
        if not ok
    ]
    if notes and defined.any():
        notes.append(f"the macro ROC-AUC averages the {int(defined.sum())} labels where it is defined")
    return tuple(notes)
