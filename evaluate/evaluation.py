"""`evaluate`: an artifact's figures on labelled data, per tweet, per group, and against PyTorch.

Per tweet, the figures are those of the classifier's probabilities and decisions (at its
thresholds) against each tweet's labels. Per group (data read with `group_by`), they are
those of the runtime's `aggregate`, the mean probability over a group's tweets and that mean
against the threshold, against the group's labels: how the model's authors judge a place.
With a reference checkpoint, the same figures of the PyTorch fp32 model on the same rows,
and the differences.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vigil.runtime.aggregate import aggregate
from vigil.runtime.engine import Classifier

from .dataset import LabelledData
from .metrics import Metrics, compute_metrics
from .reference import reference_probabilities

__all__ = ["Comparison", "Evaluation", "evaluate"]


@dataclass(frozen=True)
class Comparison:
    """The reference checkpoint's figures on the same rows, and how far the artifact's are.

    Attributes:
        checkpoint: The PyTorch checkpoint directory.
        tweets, groups: Its figures (groups: None without `group_by`).
        max_abs_prob_diff: Largest |artifact - reference| probability over all tweets and labels.
        decision_flips: Tweet-label decisions that differ at the classifier's thresholds.
    """

    checkpoint: str
    tweets: Metrics
    groups: Metrics | None
    max_abs_prob_diff: float
    decision_flips: int


@dataclass(frozen=True)
class Evaluation:
    """What `evaluate` found: which artifact, on which data, and its figures."""

    artifact: str
    variant: str
    provider: str
    random_weights: bool
    data: LabelledData
    tweets: Metrics
    groups: Metrics | None
    reference: Comparison | None

    @property
    def warnings(self) -> tuple[str, ...]:
        """Every label, per tweet and per group, with too few positives or negatives to trust."""
        return self.tweets.warnings + (self.groups.warnings if self.groups else ())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; `reference` adds the artifact-minus-reference differences."""
        result: dict[str, Any] = {
            "artifact": self.artifact,
            "variant": self.variant,
            "provider": self.provider,
            "random_weights": self.random_weights,
            "data": {
                "file": str(self.data.path),
                "rows": len(self.data.texts),
                "label_columns": list(self.data.columns),
                "group_by": self.data.group_by,
            },
            "tweets": self.tweets.to_dict(),
        }
        if self.groups:
            result["groups"] = self.groups.to_dict()
        if self.reference:
            result["reference"] = self._reference_dict(self.reference)
        return result

    def _reference_dict(self, ref: Comparison) -> dict[str, Any]:
        difference = {"tweets": self.tweets.minus(ref.tweets)}
        reference: dict[str, Any] = {
            "checkpoint": ref.checkpoint,
            "max_abs_prob_diff": ref.max_abs_prob_diff,
            "decision_flips": ref.decision_flips,
            "tweets": ref.tweets.to_dict(),
        }
        if self.groups and ref.groups:
            reference["groups"] = ref.groups.to_dict()
            difference["groups"] = self.groups.minus(ref.groups)
        reference["difference"] = difference
        return reference


def evaluate(
    clf: Classifier,
    data: LabelledData,
    *,
    reference: str | os.PathLike[str] | None = None,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> Evaluation:
    """Score DATA with CLF and measure it, per tweet and, if DATA has groups, per group.

    Args:
        reference: A PyTorch checkpoint (the artifact's source) to score the same texts
            with, for comparison; needs the `export` extra.
        progress: Called with the number of tweets each scored batch finished.

    Raises:
        ValueError: DATA was read for other labels than CLF's.
    """
    data.require_labels(clf.labels)
    probabilities = clf.predict(data.texts, batch_size=batch_size, progress=progress)
    tweets, groups = _measure(clf, data, probabilities)
    comparison = None
    if reference is not None:
        expected = reference_probabilities(reference, data.texts, clf.labels, clf.manifest.sequence_length)
        comparison = Comparison(
            str(reference),
            *_measure(clf, data, expected),
            max_abs_prob_diff=float(np.abs(probabilities - expected).max()),
            decision_flips=int((clf.decide(probabilities) != clf.decide(expected)).sum()),
        )
    return Evaluation(
        artifact=str(clf.manifest.directory),
        variant=clf.variant,
        provider=clf.provider,
        random_weights=clf.random_weights,
        data=data,
        tweets=tweets,
        groups=groups,
        reference=comparison,
    )


def _measure(clf: Classifier, data: LabelledData, probabilities: np.ndarray) -> tuple[Metrics, Metrics | None]:
    """Figures of PROBABILITIES per tweet and, with groups, per group."""
    tweets = compute_metrics(clf.labels, data.truth, probabilities, clf.decide(probabilities), clf.thresholds)
    if data.groups is None:
        return tweets, None
    scores = aggregate(probabilities, data.groups, clf.labels, clf.thresholds)
    groups = compute_metrics(
        clf.labels, data.group_truth(scores.groups), scores.means, scores.flags, clf.thresholds, unit="groups"
    )
    return tweets, groups
