"""Per-group scores: how the model's authors judge a place rather than a single tweet.

The authors classify a place by its tweets taken together: the mean probability of each
label over the place's tweets, then that mean against the label's threshold. `aggregate`
does exactly that for any grouping key (a place, a user, a day), in first-seen order.
`GroupAccumulator` does it batch after batch, holding one row per group rather than the
whole input, with the very same result: `aggregate` is an accumulator fed once.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

__all__ = ["GroupAccumulator", "GroupScores", "GroupTotals", "aggregate"]


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


class GroupTotals(NamedTuple):
    """Row counts and float64 label sums per group: what a `GroupAccumulator` holds.

    Attributes:
        groups: The distinct group keys, in order of first appearance.
        counts: int64 [g], rows per group.
        sums: float64 [g, n_labels], each label's probabilities summed over the group's rows.
    """

    groups: tuple[Hashable, ...]
    counts: np.ndarray
    sums: np.ndarray


class GroupAccumulator:
    """Per-group row counts and probability sums, batch after batch, in one row per group.

    Sums are float64, so that a large group's mean is not rounded while it accumulates, and
    each group's sum adds its rows one at a time in input order (`np.add.at` is unbuffered
    and walks its indices in order). So however the rows are split into batches, every sum,
    and hence every float32 mean, is bit for bit that of a single pass.
    """

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels: tuple[str, ...] = tuple(labels)
        self._codes: dict[Hashable, int] = {}
        self._counts = np.zeros(0, dtype=np.int64)
        self._sums = np.zeros((len(self.labels), 0), dtype=np.float64)  # a row per label: fast np.add.at

    def add(self, groups: Sequence[Hashable], probabilities: np.ndarray) -> None:
        """Count each row of PROBABILITIES ([n, n_labels]) towards the group at its position in GROUPS.

        Raises:
            ValueError: The shapes do not agree; nothing is added.
        """
        rows = self._rows("probabilities", probabilities)
        if len(groups) != len(rows):
            raise ValueError(f"need one group per row: got {len(groups)} groups for {len(rows)} rows")
        self._add(groups, np.ones(len(rows), dtype=np.int64), rows)

    def add_totals(self, totals: GroupTotals) -> None:
        """Add another accumulator's `totals()` (a Ray block's, say), group by group in their order.

        Raises:
            ValueError: The shapes do not agree; nothing is added.
        """
        sums = self._rows("sums", totals.sums)
        counts = np.asarray(totals.counts, dtype=np.int64)
        if not len(totals.groups) == len(counts) == len(sums):
            raise ValueError(
                f"need a count and a row of sums per group: got {len(totals.groups)} groups, "
                f"{len(counts)} counts and {len(sums)} rows"
            )
        self._add(totals.groups, counts, sums)

    def totals(self) -> GroupTotals:
        """A copy of the counts and sums so far, groups in order of first appearance."""
        n = len(self._codes)
        return GroupTotals(tuple(self._codes), self._counts[:n].copy(), self._sums[:, :n].T.copy())

    def result(self, thresholds: np.ndarray) -> GroupScores:
        """Each group's count, float32 mean per label, and flag `mean >= threshold`.

        Args:
            thresholds: [n_labels], e.g. `Classifier.thresholds`; compared in float32.

        Raises:
            ValueError: THRESHOLDS is not one number per label.
        """
        thresholds = np.asarray(thresholds, dtype=np.float32)
        if thresholds.shape != (len(self.labels),):
            raise ValueError(f"need thresholds [{len(self.labels)}], got {thresholds.shape}")
        totals = self.totals()
        means = (totals.sums / totals.counts[:, None]).astype(np.float32)
        return GroupScores(
            groups=totals.groups, labels=self.labels, counts=totals.counts, means=means, flags=means >= thresholds
        )

    def _rows(self, name: str, values: np.ndarray) -> np.ndarray:
        """VALUES as float64 [n, n_labels]; ValueError naming NAME otherwise."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(self.labels):
            raise ValueError(f"need {name} [n, {len(self.labels)}], got {values.shape}")
        return values

    def _add(self, groups: Sequence[Hashable], counts: np.ndarray, sums: np.ndarray) -> None:
        codes = self._codes_of(groups)
        self._reserve(len(self._codes))
        np.add.at(self._counts, codes, counts)
        for label_sums, column in zip(self._sums, sums.T):
            np.add.at(label_sums, codes, column)

    def _codes_of(self, groups: Sequence[Hashable]) -> np.ndarray:
        """Each group's row index, numbering new groups on; an unhashable key leaves the numbering unchanged."""
        known, new = self._codes, {}
        first = len(known)
        codes = np.fromiter(
            (known[g] if g in known else new.setdefault(g, first + len(new)) for g in groups), np.intp, len(groups)
        )
        known.update(new)
        return codes

    def _reserve(self, n: int) -> None:
        """Room for N groups, doubling, so that many small batches of new groups stay linear."""
        capacity = len(self._counts)
        if n <= capacity:
            return
        capacity = max(n, 2 * capacity)
        counts, sums = np.zeros(capacity, dtype=np.int64), np.zeros((len(self.labels), capacity), dtype=np.float64)
        counts[: len(self._counts)], sums[:, : len(self._counts)] = self._counts, self._sums
        self._counts, self._sums = counts, sums


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
    accumulator = GroupAccumulator(labels)
    accumulator.add(groups, probabilities)
    return accumulator.result(thresholds)
