"""benchmarks/embeddings.py runs end to end on the tiny stand-in (figures unchecked: no timing thresholds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.embeddings import _without_pooled
from vigil.runtime import Classifier

REPO = Path(__file__).resolve().parents[2]


def test_the_side_by_side_prints_every_way_and_ratio(tiny_artifact: Path) -> None:
    pytest.importorskip("onnx")
    command = [sys.executable, "-m", "benchmarks.embeddings", str(tiny_artifact), "data/tweets", "--limit", "64", "--rounds", "2"]
    report = json.loads(subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout)
    ways = {"predict", "predict_embeddings", "embed", "predict_without_pooled"}
    assert set(report["texts_per_s"]) == set(report["round_spread"]) == ways
    assert set(report["ratios"]) == {f"{way}_vs_predict" for way in ways - {"predict"}}
    assert report["texts"] == 64 and report["rounds"] == 2


def test_the_baseline_scores_alike_from_a_graph_without_pooled(tiny_artifact: Path, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    with pytest.warns(UserWarning, match="random-weight"):
        classifier = Classifier.open(tiny_artifact, provider="cpu", variant="fp32")
    with classifier, _without_pooled(classifier, tmp_path) as baseline:
        assert [o.name for o in onnx.load(tmp_path / "without-pooled.onnx").graph.output] == ["logits"]
        assert baseline.embedding_problem is not None
        texts = ["a tweet", "another one, a little longer than the first"]
        assert baseline.predict(texts).tolist() == classifier.predict(texts).tolist()
