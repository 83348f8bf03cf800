"""benchmarks.service_load's paired rounds: the order alternates, each ratio is its own round's."""

from __future__ import annotations

from benchmarks.service_load import alternate


def test_paired_rounds_alternate_which_goes_first() -> None:
    calls: list[str] = []
    served_figures, reference_figures = iter([2.0, 3.0, 4.0]), iter([1.0, 2.0, None])

    def served() -> float:
        calls.append("served")
        return next(served_figures)

    def reference() -> float | None:
        calls.append("reference")
        return next(reference_figures)

    pairs = alternate(3, served, reference)
    assert calls == ["served", "reference", "reference", "served", "served", "reference"]
    assert [pair["ratio"] for pair in pairs] == [2.0, 1.5, None]  # a round without a figure has no ratio
    assert [list(pair) for pair in pairs][1] == ["reference", "served", "ratio"]  # its order is recorded
