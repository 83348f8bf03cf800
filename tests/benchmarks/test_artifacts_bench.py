"""benchmarks/artifacts.py runs end to end on two tiny stand-ins (figures unchecked: no timing thresholds)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reseeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny stand-in with other random weights: an artifact that scores differently."""
    standin = pytest.importorskip("vigil.export.standin")
    artifact = pytest.importorskip("vigil.export.artifact")
    root = tmp_path_factory.mktemp("reseeded")
    standin.write_standin(root / "checkpoint", size=standin.TINY, seed=1)
    artifact.export_artifact(root / "artifact", str(root / "checkpoint"))
    return root / "artifact"


def _run(before: Path, after: Path) -> list[dict]:
    command = [sys.executable, "-m", "benchmarks.artifacts", str(before), str(after), "data/tweets", "--variant", "fp32",
               "--limit", "96", "--latency-texts", "6", "--rounds", "3"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_rounds_alternate_and_the_summary_is_their_median_ratios(tiny_artifact: Path, reseeded: Path) -> None:
    *rounds, summary = _run(tiny_artifact, reseeded)
    assert [(one["round"], one["first"]) for one in rounds] == [(0, "before"), (1, "after"), (2, "before")]
    for one in rounds:
        for name in ("before", "after"):
            assert one[name]["bulk_texts_per_s"] > 0 and one[name]["p50"] > 0 and one[name]["mean"] > 0
    for figure in ("bulk_texts_per_s", "p50", "mean"):
        median = statistics.median(one["after"][figure] / one["before"][figure] for one in rounds)
        assert summary[f"{figure}_ratio"] == round(median, 3)
    assert summary["texts"] == 96 and summary["variant"] == "fp32"
    assert summary["max_abs_prob_diff"] > 0.01  # other weights, other scores


def test_an_artifact_against_itself_differs_by_nothing(tiny_artifact: Path) -> None:
    assert _run(tiny_artifact, tiny_artifact)[-1]["max_abs_prob_diff"] == 0.0
