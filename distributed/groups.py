"""Per-group scores over a scored Ray Dataset: the authors' mean-then-threshold rule, at scale.

Each block is reduced where it lies to one row per group (count and float64 sum per label); only
those partial rows travel to the driver, which adds them up in block order and hands the means
to `vigil.runtime.aggregate`, so rounding, thresholds and first-seen group order are the library's.

Float64 sums are added in another association than a sequential pass (block by block), so a mean
can differ from local `vigil classify --group-by` only where a float64 rounding difference
(relative 1e-16 per term) crosses a float32 rounding boundary; in practice the float32 means are
identical.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from vigil.runtime import GroupScores, aggregate

__all__ = ["group_scores"]

_COUNT = "count"


def group_scores(ds: Any, group_column: str, labels: Sequence[str], thresholds: np.ndarray) -> GroupScores:
    """Count, mean probability per label and flag (mean >= threshold) per value of GROUP_COLUMN.

    DS is a scored Dataset (see `score_dataset`) whose order is preserved
    (`DataContext.execution_options.preserve_order`), so groups come in order of first appearance.
    """
    partials = ds.map_batches(
        _partial_sums, fn_kwargs={"group_column": group_column, "labels": list(labels)},
        batch_size=None, batch_format="pyarrow",
    )
    counts: dict[Hashable, int] = {}
    sums: dict[Hashable, np.ndarray] = {}
    for batch in partials.iter_batches(batch_size=None, batch_format="pyarrow"):
        block_sums = np.stack([batch.column(_sum(label)).to_numpy() for label in labels], axis=1)
        for key, count, row in zip(batch.column("group").to_pylist(), batch.column(_COUNT).to_pylist(), block_sums):
            counts[key] = counts.get(key, 0) + count
            sums[key] = sums[key] + row if key in sums else row.copy()
    groups = list(sums)
    group_counts = np.array([counts[group] for group in groups], dtype=np.int64)
    means = np.array([sums[group] for group in groups]).reshape(len(groups), len(labels)) / group_counts[:, None]
    return dataclasses.replace(aggregate(means, groups, labels, thresholds), counts=group_counts)


def _partial_sums(batch: Any, *, group_column: str, labels: list[str]) -> Any:
    """One row per group of a pyarrow block: the group, its row count and float64 sum per label."""
    import pyarrow as pa

    keys = batch.column(group_column).to_pylist()  # Python values, as local classify groups them
    first_seen: dict[Hashable, int] = {}
    codes = np.fromiter((first_seen.setdefault(key, len(first_seen)) for key in keys), np.intp, len(keys))
    n = len(first_seen)
    columns = {
        "group": pa.array(list(first_seen), type=batch.schema.field(group_column).type),
        _COUNT: pa.array(np.bincount(codes, minlength=n).astype(np.int64)),
    }
    for label in labels:
        weights = batch.column(label).to_numpy().astype(np.float64)
        columns[_sum(label)] = pa.array(np.bincount(codes, weights=weights, minlength=n))
    return pa.table(columns)


def _sum(label: str) -> str:
    return f"sum:{label}"
