"""Tests for vigil.runtime.aggregate against a plain Python loop over the rows, and GroupAccumulator against aggregate."""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np
import pytest

from vigil.runtime import (
    Classifier,
    GroupAccumulator,
    GroupScores,
    GroupTotals,
    aggregate,
)

LABELS = ("a", "b", "c")


def by_loop(probabilities: np.ndarray, groups: Sequence[Hashable], thresholds: Sequence[float]) -> list[dict]:
    """The obvious computation, one row at a time, in first-seen order."""
    sums: dict[Hashable, list[float]] = {}
    counts: dict[Hashable, int] = {}
    for row, group in zip(probabilities.tolist(), groups):
        if group not in sums:
            sums[group], counts[group] = [0.0] * len(row), 0
        sums[group] = [s + p for s, p in zip(sums[group], row)]
        counts[group] += 1
    rows = []
    for group, total in sums.items():
        means = [np.float32(s / counts[group]) for s in total]
        row = {"group": group, "count": counts[group]}
        for label, mean, threshold in zip(LABELS, means, thresholds):
            row[label] = float(mean)
            row[f"{label}_flag"] = bool(mean >= np.float32(threshold))
        rows.append(row)
    return rows


def test_matches_a_plain_loop_on_mixed_group_keys() -> None:
    rng = random.Random(3)
    keys: list[Hashable] = ["paris", "beirut", 7, None, ("lat", 1.5), "delhi"]
    groups = [rng.choice(keys) for _ in range(5000)]
    probabilities = np.random.default_rng(3).random((5000, 3), dtype=np.float32)
    thresholds = np.array([0.5, 0.45, 0.55], dtype=np.float32)
    scores = aggregate(probabilities, groups, LABELS, thresholds)
    expected = by_loop(probabilities, groups, thresholds)
    assert scores.groups == tuple(row["group"] for row in expected)
    rows = scores.to_rows()
    assert [list(row) for row in rows] == [["group", "count", "a", "a_flag", "b", "b_flag", "c", "c_flag"]] * len(rows)
    for got, want in zip(rows, expected):
        assert got["group"] == want["group"] and got["count"] == want["count"]
        for label in LABELS:
            assert got[label] == pytest.approx(want[label], abs=1e-6)
            assert got[f"{label}_flag"] == want[f"{label}_flag"]
        assert all(type(got[k]) is t for k, t in (("count", int), ("a", float), ("a_flag", bool)))


def test_shapes_and_dtypes() -> None:
    scores = aggregate(np.array([[0.2, 0.4, 0.6], [0.4, 0.6, 0.8], [0.9, 0.1, 0.5]]), ["x", "x", "y"], LABELS, np.full(3, 0.5))
    assert isinstance(scores, GroupScores) and scores.labels == LABELS
    assert scores.counts.tolist() == [2, 1] and scores.counts.dtype == np.int64
    assert scores.means.dtype == np.float32 and scores.means.shape == (2, 3)
    np.testing.assert_allclose(scores.means, [[0.3, 0.5, 0.7], [0.9, 0.1, 0.5]], rtol=0, atol=1e-7)
    assert scores.flags.tolist() == [[False, True, True], [True, False, True]]  # a mean equal to 0.5 flags


def test_no_rows_no_groups() -> None:
    scores = aggregate(np.zeros((0, 3), dtype=np.float32), [], LABELS, np.full(3, 0.5))
    assert scores.groups == () and scores.means.shape == (0, 3) and scores.to_rows() == []


@pytest.mark.parametrize(
    ("probabilities", "groups", "thresholds", "message"),
    [
        (np.zeros((2, 4)), ["x", "y"], np.full(3, 0.5), "need probabilities"),
        (np.zeros((2, 3)), ["x"], np.full(3, 0.5), "one group per row"),
        (np.zeros((2, 3)), ["x", "y"], np.full(2, 0.5), "thresholds"),
    ],
)
def test_mismatched_shapes_are_refused(probabilities, groups, thresholds, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        aggregate(probabilities, groups, LABELS, thresholds)


def test_aggregates_a_classifier_by_language(tiny_artifact: Path, shared_tweets: dict[str, list[str]]) -> None:
    texts = [t for lines in shared_tweets.values() for t in lines[:50]]
    languages = [lang for lang, lines in shared_tweets.items() for _ in lines[:50]]
    with pytest.warns(UserWarning, match="random-weight"), Classifier.open(tiny_artifact) as classifier:
        probabilities = classifier.predict(texts)
        scores = aggregate(probabilities, languages, classifier.labels, classifier.thresholds)
    assert scores.groups == tuple(shared_tweets)
    assert scores.counts.tolist() == [50] * len(shared_tweets)
    for i, language in enumerate(scores.groups):
        mean = probabilities[[lang == language for lang in languages]].mean(axis=0, dtype=np.float64)
        np.testing.assert_allclose(scores.means[i], mean, rtol=0, atol=1e-6)
        assert scores.flags[i].tolist() == (scores.means[i] >= classifier.thresholds).tolist()


def test_flags_compare_in_float32_as_the_classifier_thresholds_are() -> None:
    """float32(0.7) lies below 0.7: a mean of exactly the float32 threshold is flagged."""
    from vigil.runtime.aggregate import aggregate

    p = np.float32(0.7)
    scores = aggregate(np.array([[p]], dtype=np.float32), ["g"], ["a"], np.array([0.7]))
    assert scores.flags.tolist() == [[True]]


# --- GroupAccumulator -------------------------------------------------------------------


def uneven_chunks(n: int, seed: int) -> list[slice]:
    """Consecutive slices of 0 to 97 rows covering range(n), empty ones included."""
    rng, start, chunks = random.Random(seed), 0, []
    while start < n:
        size = rng.choice([0, 1, 2, 7, 64, 97])
        chunks.append(slice(start, start + size))
        start += size
    return chunks


def assert_same_scores(got: GroupScores, want: GroupScores) -> None:
    """Bit for bit: keys and their order, labels, and every array's dtype, shape and values."""
    assert got.groups == want.groups and got.labels == want.labels
    for name in ("counts", "means", "flags"):
        got_array, want_array = getattr(got, name), getattr(want, name)
        assert got_array.dtype == want_array.dtype, name
        np.testing.assert_array_equal(got_array, want_array, err_msg=name, strict=True)


def test_an_accumulator_fed_in_uneven_chunks_equals_aggregate_exactly() -> None:
    rng = np.random.default_rng(5)
    n = 20_000
    groups = rng.integers(0, 1500, n).tolist()  # many groups, most first seen in a late chunk
    probabilities = rng.random((n, 3), dtype=np.float32)
    thresholds = np.array([0.5, 0.49, 0.51], dtype=np.float32)
    accumulator = GroupAccumulator(LABELS)
    for chunk in uneven_chunks(n, seed=5):
        accumulator.add(groups[chunk], probabilities[chunk])
    assert_same_scores(accumulator.result(thresholds), aggregate(probabilities, groups, LABELS, thresholds))


def test_sums_add_row_after_row_in_input_order_whatever_the_chunks() -> None:
    """1 is lost next to 1e20 in float64: a sum of per-chunk subtotals would give 1/3, not 0."""
    probabilities = np.array([[1.0], [1e20], [-1e20]])
    accumulator = GroupAccumulator(["a"])
    accumulator.add(["g"], probabilities[:1])
    accumulator.add(["g", "g"], probabilities[1:])
    assert accumulator.result(np.array([0.5])).means.tolist() == [[0.0]]
    assert aggregate(probabilities, ["g"] * 3, ["a"], np.array([0.5])).means.tolist() == [[0.0]]


def test_totals_carry_over_to_another_accumulator() -> None:
    """Blocks accumulated apart, then added up in block order (what distributed/groups.py does)."""
    rng = np.random.default_rng(8)
    groups = rng.choice(["x", "y", "z"], 300).tolist()
    probabilities = rng.random((300, 3), dtype=np.float32)
    merged = GroupAccumulator(LABELS)
    for block in (slice(0, 120), slice(120, 121), slice(121, 300)):
        part = GroupAccumulator(LABELS)
        part.add(groups[block], probabilities[block])
        totals = part.totals()
        assert isinstance(totals, GroupTotals) and totals.sums.dtype == np.float64
        merged.add_totals(totals)
    got, want = merged.result(np.full(3, 0.5)), aggregate(probabilities, groups, LABELS, np.full(3, 0.5))
    assert got.groups == want.groups and got.counts.tolist() == want.counts.tolist()
    np.testing.assert_allclose(got.means, want.means, rtol=1e-6, atol=0)


def test_a_refused_batch_leaves_the_accumulator_as_it_was() -> None:
    accumulator = GroupAccumulator(LABELS)
    accumulator.add(["x", "y"], np.full((2, 3), 0.25))
    before = accumulator.totals()
    with pytest.raises(TypeError, match="unhashable"):
        accumulator.add(["new", ["a", "list"]], np.ones((2, 3)))
    with pytest.raises(ValueError, match="one group per row"):
        accumulator.add(["new"], np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"need sums \[n, 3\]"):
        accumulator.add_totals(GroupTotals(("new",), np.array([1]), np.ones((1, 2))))
    with pytest.raises(ValueError, match="a count and a row of sums per group"):
        accumulator.add_totals(GroupTotals(("new", "other"), np.array([1]), np.ones((2, 3))))
    after = accumulator.totals()
    assert after.groups == before.groups == ("x", "y")
    np.testing.assert_array_equal(after.counts, before.counts)
    np.testing.assert_array_equal(after.sums, before.sums)
    assert accumulator.result(np.full(3, 0.5)).means.tolist() == [[0.25] * 3] * 2


def test_an_empty_accumulator_has_no_groups() -> None:
    scores = GroupAccumulator(LABELS).result(np.full(3, 0.5))
    assert scores.groups == () and scores.means.shape == (0, 3) and scores.counts.dtype == np.int64
