"""Threshold calibration: the search, the manifest it rewrites, and the thresholds reaching the runtime."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

pytest.importorskip("sklearn")

from sklearn.metrics import fbeta_score

from vigil.cli.main import main
from vigil.cli.evaluate import calibrate_command
from vigil.evaluate import choose_threshold
from vigil.runtime import Classifier, Manifest
from vigil.runtime.errors import ArtifactError

from independent_metrics import confusion, precision_recall_f1
from labelled_files import cuts, draw_labels, write_jsonl

pytestmark = pytest.mark.filterwarnings("ignore:.*random-weight stand-in:UserWarning")


def calibrate(artifact: Path, data: Path, *args: str) -> Result:
    argv = [str(artifact), str(data), "--provider", "cpu", "--variant", "fp32", "-q", *args]
    return CliRunner().invoke(calibrate_command, argv, catch_exceptions=False)


# --- the search -------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
@pytest.mark.parametrize(("lo", "hi"), [(0.0, 1.0), (0.35, 0.6), (0.9, 1.0)])
def test_the_chosen_threshold_is_the_best_of_every_candidate(beta: float, lo: float, hi: float) -> None:
    """Brute force: scikit-learn's F-beta at every threshold that changes a decision in [lo, hi]."""
    rng = np.random.default_rng(int(beta * 10))
    truth = (rng.random(400) < 0.3).astype(int)
    scores = np.round(np.clip(0.25 * truth + rng.normal(0.4, 0.15, 400), 0, 1), 2).astype(np.float32)  # many ties

    chosen = choose_threshold(truth, scores, beta=beta, lo=lo, hi=hi)

    inside = scores[(scores > np.float32(lo)) & (scores < np.float32(hi))]
    candidates = np.unique(np.concatenate([inside, np.float32([lo, hi])]))
    values = np.array([fbeta_score(truth, scores >= t, beta=beta, zero_division=0) for t in candidates])
    assert lo <= chosen <= hi
    assert fbeta_score(truth, scores >= np.float32(chosen), beta=beta) == pytest.approx(values.max(), abs=1e-12)
    assert np.float32(chosen) == candidates[values >= values.max() - 1e-12].max()  # the highest of the best


# --- the manifest -----------------------------------------------------------------------


def test_with_thresholds_keeps_everything_else(tiny_artifact: Path) -> None:
    manifest = Manifest.load(tiny_artifact)
    label = manifest.labels[0]
    raw = manifest.with_thresholds({label: np.float32(0.25)}, {"metric": "f1"})
    assert raw["thresholds"] == {label: 0.25} and raw["calibration"] == {"metric": "f1"}
    assert {key: value for key, value in raw.items() if key not in ("thresholds", "calibration")} == {
        key: value for key, value in manifest.raw.items() if key not in ("thresholds", "calibration")
    }
    json.dumps(raw)  # numpy floats became floats
    assert Manifest.from_dict(manifest.directory, raw).thresholds == {label: 0.25}
    with pytest.raises(ArtifactError, match=r"thresholds for unknown labels \['nope'\]"):
        manifest.with_thresholds({"nope": 0.3}, {})


# --- end to end -------------------------------------------------------------------------


def test_calibrated_thresholds_improve_held_out_f1_and_reach_the_runtime(
    tiny_artifact: Path, tweets: list[str], scores: np.ndarray, tmp_path: Path
) -> None:
    """Labels `p >= the 70th percentile` with 5% flips: the percentile is best, 0.5 worse.

    Calibrate on one half, measure on the other half, which calibration never saw.
    """
    artifact = Path(shutil.copytree(tiny_artifact, tmp_path / "artifact"))
    labels = Manifest.load(artifact).labels
    truth = draw_labels(scores, cuts(scores, 0.7), flips=0.05, seed=3)
    order = np.random.default_rng(4).permutation(len(tweets))
    fit, held_out = order[: len(order) // 2], order[len(order) // 2 :]
    data = write_jsonl(tmp_path / "validation.jsonl", [tweets[i] for i in fit], truth[fit], labels)

    result = calibrate(artifact, data)

    assert result.exit_code == 0, result.output
    manifest = json.loads((artifact / "manifest.json").read_text(encoding="utf-8"))
    thresholds = np.array([manifest["thresholds"][label] for label in labels], dtype=np.float32)
    f1_before = precision_recall_f1(*confusion(truth[held_out], scores[held_out] >= 0.5))[2]
    f1_after = precision_recall_f1(*confusion(truth[held_out], scores[held_out] >= thresholds))[2]
    f1_best = precision_recall_f1(*confusion(truth[held_out], scores[held_out] >= cuts(scores, 0.7)))[2]
    assert (f1_after > f1_before).all(), (f1_before, f1_after)
    assert (f1_after >= f1_best - 0.01).all(), (f1_best, f1_after)  # within 1% of the labels' own cut
    assert (f1_after > 0.85).all()  # 5% flips of a 30/70 split cost about a tenth of F1

    record = manifest["calibration"]
    assert record["data"] == {
        "file": "validation.jsonl", "sha256": hashlib.sha256(data.read_bytes()).hexdigest(), "rows": len(fit),
    }
    assert (record["metric"], record["variant"], record["range"]) == ("f1", "fp32", [0.0, 1.0])
    assert datetime.fromisoformat(record["date"]).tzinfo is not None
    for label, threshold in zip(labels, thresholds):
        entry = record["labels"][label]
        assert entry["threshold_before"] == 0.5 and np.float32(entry["threshold_after"]) == threshold
        assert entry["after"] > entry["before"]
    assert labels[0] in result.stdout and "wrote the thresholds into" in result.stdout

    with Classifier.open(artifact, provider="cpu", variant="fp32") as clf:
        assert (clf.thresholds == thresholds).all()
    with Classifier.open(artifact, provider="cpu", variant="fp32", thresholds=0.5) as clf:
        assert (clf.thresholds == 0.5).all()  # an explicit threshold still wins

    sample = held_out[:300]
    classified = _classify_with_labels(artifact, [tweets[i] for i in sample], tmp_path / "sample.txt")
    predictions = np.array([[int(row[f"{label}_pred"]) for label in labels] for row in classified])
    assert (predictions == (scores[sample] >= thresholds)).all()


def _classify_with_labels(artifact: Path, texts: list[str], path: Path) -> list[dict[str, str]]:
    """`vigil classify --labels` on TEXTS (one per line); the rows it prints."""
    path.write_text("".join(text + "\n" for text in texts), encoding="utf-8")
    argv = ["classify", str(artifact), str(path), "--labels", "--provider", "cpu", "--variant", "fp32", "-q"]
    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def test_a_one_class_label_keeps_its_threshold(
    tiny_artifact: Path, tweets: list[str], scores: np.ndarray, tmp_path: Path
) -> None:
    artifact = Path(shutil.copytree(tiny_artifact, tmp_path / "artifact"))
    labels = Manifest.load(artifact).labels
    truth = draw_labels(scores[:500], cuts(scores[:500], 0.5))
    truth[:, 2] = 1
    data = write_jsonl(tmp_path / "d.jsonl", tweets[:500], truth, labels)

    result = calibrate(artifact, data, "--metric", "f2", "--min-threshold", "0.1", "--max-threshold", "0.9")

    assert result.exit_code == 0, result.output
    manifest = json.loads((artifact / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["thresholds"][labels[2]] == 0.5
    assert manifest["calibration"]["labels"][labels[2]]["note"] == "kept: all 500 tweets are positive"
    assert all(0.1 <= value <= 0.9 for value in manifest["thresholds"].values())
    assert manifest["calibration"]["metric"] == "f2"
    assert result.stderr.count("warning: ") == len(labels)  # 500 rows: too few to trust


@pytest.mark.parametrize(("args", "message"), [
    (["--metric", "precision"], "expected one of f1, f0.5, f2, got 'precision'"),
    (["--min-threshold", "0.8", "--max-threshold", "0.2"], "0.8 is above --max-threshold 0.2"),
])
def test_bad_options_are_usage_errors(tiny_artifact: Path, tmp_path: Path, args: list[str], message: str) -> None:
    data = tmp_path / "d.csv"
    data.write_text("text\n", encoding="utf-8")
    result = calibrate(tiny_artifact, data, *args)
    assert result.exit_code == 2 and message in result.stderr


def test_bad_data_leaves_the_manifest_alone(tiny_artifact: Path, tmp_path: Path) -> None:
    artifact = Path(shutil.copytree(tiny_artifact, tmp_path / "artifact"))
    before = (artifact / "manifest.json").read_bytes()
    data = tmp_path / "d.csv"
    data.write_text("text\nhello\n", encoding="utf-8")
    result = calibrate(artifact, data)
    assert result.exit_code == 1 and result.stderr.startswith(f"error: {data}: no column")
    assert (artifact / "manifest.json").read_bytes() == before
