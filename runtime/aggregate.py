"""Per-group scores: how the model's authors judge a place rather than a single tweet.

The authors classify a place by its tweets taken together: the mean probability of each
label over the place's tweets, then that mean against the label's threshold. `aggregate`
does exactly that for any grouping key (a place, a user, a day), in first-seen order.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["GroupScores", "aggregate"]


@dataclass(frozen=True)
class GroupScores:
    """Mean probabilities per group and their decisions.

    Attributes:
        groups: The distinct group keys, in order of first appearance.
        labels: Label names, the columns of `means` and `flags`.
        counts: int64 [g], texts per group.
        means: float32 [g, n_labels], mean probability per group and label.
        flags: bool [g, n_labels], `means >= thresholds`.
    """

    groups: tuple[Hashable, ...]
    labels: tuple[str, ...]
    counts: np.ndarray
    means: np.ndarray
    flags: np.ndarray

    def to_rows(self) -> list[dict[str, Any]]:
        """One plain dict per group: group, count, then "<label>" and "<label>_flag" per label."""
        rows = []
        for group, count, means, flags in zip(self.groups, self.counts, self.means, self.flags):
            row: dict[str, Any] = {"group": group, "count": int(count)}
            for label, mean, flag in zip(self.labels, means, flags):
                row[label] = float(mean)
                row[f"{label}_flag"] = bool(flag)
            rows.append(row)
        return rows


def aggregate(
    probabilities: np.ndarray,
    groups: Sequence[Hashable],
    labels: Sequence[str],
    thresholds: np.ndarray,
) -> GroupScores:
    """Mean each label's probability over the texts of each group, and threshold the mean.

    Args:
        probabilities: [n, n_labels], e.g. from `Classifier.predict`.
        groups: n group keys, one per row.
        labels: The n_labels label names.
        thresholds: [n_labels], e.g. `Classifier.thresholds`; a flag is `mean >= threshold`.

    Raises:
        ValueError: The shapes do not agree.
    """
    probabilities = np.asarray(probabilities)
    thresholds = np.asarray(thresholds, dtype=np.float32)
    n_labels = len(labels)
    if probabilities.ndim != 2 or probabilities.shape[1] != n_labels or thresholds.shape != (n_labels,):
        raise ValueError(
            f"need probabilities [n, {n_labels}] and thresholds [{n_labels}], "
            f"got {probabilities.shape} and {thresholds.shape}"
        )
    if len(groups) != len(probabilities):
        raise ValueError(f"need one group per row: got {len(groups)} groups for {len(probabilities)} rows")
    first_seen: dict[Hashable, int] = {}
    codes = np.fromiter((first_seen.setdefault(g, len(first_seen)) for g in groups), np.intp, len(groups))
    n_groups = len(first_seen)
    counts = np.bincount(codes, minlength=n_groups)
    # Sum in float64 so that a large group's mean is not rounded while it accumulates.
    columns = probabilities.T.astype(np.float64)
    sums = np.stack([np.bincount(codes, weights=column, minlength=n_groups) for column in columns], axis=1)
    means = (sums / counts[:, None]).astype(np.float32)
    return GroupScores(
        groups=tuple(first_seen),
        labels=tuple(labels),
        counts=counts.astype(np.int64),
        means=means,
        flags=means >= thresholds,
    )
