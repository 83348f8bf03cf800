"""Per-label decision thresholds chosen on labelled validation data, written into the artifact.

0.5 is one threshold among many: a label that is rare in the data, or scores that sit in a
narrow band, are better served by the threshold that maximizes F1 on data like the data the
model will see. For each label `choose_threshold` tries every threshold that changes a
decision within [lo, hi] (lo, hi, and every distinct score between them) and keeps the best
F-beta; of equally good thresholds, the highest, which flags the fewest. Decisions are
`score >= threshold`, as in the runtime, and a chosen threshold is a float32 score (or lo or
hi), so on the validation data the runtime reproduces exactly the decisions measured here.

The search counts true and false positives for all candidates at once (two sorted arrays
and `searchsorted`); the figures reported before and after come from scikit-learn's
`fbeta_score`, independently of the search.

A label whose rows are all of one class has no informative threshold: it keeps its own,
with a note. The thresholds fit the variant that was scored (int8 scores differ a little
from fp32 ones); the calibration record names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import fbeta_score

from vigil.runtime.engine import Classifier
from vigil.files.atomic import write_json_atomic
from vigil.runtime.manifest import MANIFEST_FILE, Manifest, sha256_file

from .dataset import LabelledData
from .metrics import shortest_float32, support_warnings

__all__ = [
    "CALIBRATION_METRICS",
    "LabelCalibration",
    "Calibration",
    "choose_threshold",
    "calibrate",
    "write_calibration",
]

CALIBRATION_METRICS = {"f1": 1.0, "f0.5": 0.5, "f2": 2.0}
"""The metrics a threshold can maximize, with their F-beta's beta: F0.5 leans to precision,
F2 to recall. Precision or recall alone is not offered: each is maximized by a degenerate
threshold (flag almost nothing, or everything)."""


@dataclass(frozen=True)
class LabelCalibration:
    """One label's threshold before and after calibration, and the metric's value at each."""

    threshold_before: float
    threshold_after: float
    before: float
    after: float
    positives: int
    negatives: int
    note: str | None = None  # why the threshold was kept


@dataclass(frozen=True)
class Calibration:
    """Thresholds chosen on labelled data, and what the manifest records about them."""

    metric: str
    lo: float
    hi: float
    labels: dict[str, LabelCalibration]
    data_file: Path
    rows: int
    variant: str
    provider: str
    warnings: tuple[str, ...]

    @property
    def thresholds(self) -> dict[str, float]:
        return {label: c.threshold_after for label, c in self.labels.items()}

    def record(self) -> dict[str, Any]:
        """The manifest's "calibration" entry: data file and sha256, rows, metric, per-label
        values before and after, variant and date."""
        return {
            "data": {"file": self.data_file.name, "sha256": sha256_file(self.data_file), "rows": self.rows},
            "metric": self.metric,
            "range": [self.lo, self.hi],
            "variant": self.variant,
            "provider": self.provider,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "labels": {label: asdict(c) for label, c in self.labels.items()},
        }


def choose_threshold(
    truth: np.ndarray, scores: np.ndarray, *, beta: float = 1.0, lo: float = 0.0, hi: float = 1.0
) -> float:
    """The threshold in [LO, HI] with the best F-beta of `SCORES >= threshold` against TRUTH.

    Args:
        truth: 0/1 [n], with both classes present.
        scores: float32 [n].
    """
    scores = np.asarray(scores, dtype=np.float32)
    lo32, hi32 = np.float32(lo), np.float32(hi)
    candidates = np.unique(np.concatenate([[lo32, hi32], scores[(scores > lo32) & (scores < hi32)]]))
    positive_scores = np.sort(scores[truth == 1])
    negative_scores = np.sort(scores[truth == 0])
    # How many scores are >= each candidate: all but those sorted before it.
    tp = len(positive_scores) - np.searchsorted(positive_scores, candidates, side="left")
    fp = len(negative_scores) - np.searchsorted(negative_scores, candidates, side="left")
    fn = len(positive_scores) - tp
    b2 = beta * beta
    fbeta = (1 + b2) * tp / ((1 + b2) * tp + b2 * fn + fp)  # > 0: there are positives
    best = len(candidates) - 1 - int(np.argmax(fbeta[::-1]))  # the highest of equal ones
    return shortest_float32(candidates[best])


def calibrate(
    clf: Classifier,
    data: LabelledData,
    *,
    metric: str = "f1",
    lo: float = 0.0,
    hi: float = 1.0,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> Calibration:
    """Score DATA with CLF and choose each label's threshold to maximize METRIC.

    The thresholds before are CLF's (the manifest's, unless it was opened with others).

    Raises:
        ValueError: METRIC is not one of CALIBRATION_METRICS, not 0 <= LO <= HI <= 1, or
            DATA was read for other labels than CLF's.
    """
    if metric not in CALIBRATION_METRICS:
        raise ValueError(f"metric must be one of {sorted(CALIBRATION_METRICS)}, got {metric!r}")
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"need 0 <= lo <= hi <= 1, got lo={lo!r} and hi={hi!r}")
    data.require_labels(clf.labels)
    probabilities = clf.predict(data.texts, batch_size=batch_size, progress=progress)
    beta = CALIBRATION_METRICS[metric]
    labels = {
        label: _calibrate_label(data.truth[:, j], probabilities[:, j], float(clf.thresholds[j]), beta, lo, hi)
        for j, label in enumerate(clf.labels)
    }
    return Calibration(
        metric=metric,
        lo=lo,
        hi=hi,
        labels=labels,
        data_file=data.path,
        rows=len(data.texts),
        variant=clf.variant,
        provider=clf.provider,
        warnings=support_warnings(
            clf.labels, [c.positives for c in labels.values()], [c.negatives for c in labels.values()], "tweets"
        ),
    )


def write_calibration(calibration: Calibration, manifest: Manifest) -> None:
    """Rewrite the artifact's manifest, atomically, with the thresholds and their record."""
    raw = manifest.with_thresholds(calibration.thresholds, calibration.record())
    write_json_atomic(manifest.directory / MANIFEST_FILE, raw)


def _calibrate_label(
    truth: np.ndarray, scores: np.ndarray, before: float, beta: float, lo: float, hi: float
) -> LabelCalibration:
    positives = int(truth.sum())
    negatives = len(truth) - positives
    note = None
    after = before
    if positives and negatives:
        after = choose_threshold(truth, scores, beta=beta, lo=lo, hi=hi)
    else:
        note = f"kept: all {len(truth):,} tweets are {'positive' if positives else 'negative'}"
    return LabelCalibration(
        threshold_before=shortest_float32(before),
        threshold_after=shortest_float32(after),
        before=_fbeta(truth, scores, before, beta),
        after=_fbeta(truth, scores, after, beta),
        positives=positives,
        negatives=negatives,
        note=note,
    )


def _fbeta(truth: np.ndarray, scores: np.ndarray, threshold: float, beta: float) -> float:
    return float(fbeta_score(truth, scores >= np.float32(threshold), beta=beta, zero_division=0))
