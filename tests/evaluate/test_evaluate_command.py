"""`vigil evaluate` end to end on the tiny stand-in, on labelled files whose figures are known."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

pytest.importorskip("sklearn")

from vigil.cli.main import main  # noqa: F401
from vigil.cli.evaluate import evaluate_command
from vigil.runtime import Manifest

from independent_metrics import averaged, confusion, mann_whitney_auc, precision_recall_f1
from labelled_files import cuts, draw_labels, thresholds_option, write_jsonl

pytestmark = pytest.mark.filterwarnings("ignore:.*random-weight stand-in:UserWarning")


@pytest.fixture(scope="module")
def labels(tiny_artifact: Path) -> tuple[str, ...]:
    return Manifest.load(tiny_artifact).labels


def evaluate(artifact: Path, data: Path, *args: str | Path) -> Result:
    argv = [artifact, data, "--provider", "cpu", "--variant", "fp32", "-q", *args]
    return CliRunner().invoke(evaluate_command, [str(arg) for arg in argv], catch_exceptions=False)


def evaluate_json(artifact: Path, data: Path, *args: str | Path) -> tuple[dict, Result]:
    result = evaluate(artifact, data, "--json", "-", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result


def assert_matches_independent(
    report: dict, labels: tuple[str, ...], truth: np.ndarray, scores: np.ndarray, decisions: np.ndarray
) -> None:
    """Every figure of REPORT (one level of the JSON) against confusion counts and Mann-Whitney ranks."""
    precision, recall, f1 = precision_recall_f1(*confusion(truth, decisions))
    for j, label in enumerate(labels):
        got = report["labels"][label]
        assert got["positives"] == truth[:, j].sum() and got["negatives"] == len(truth) - truth[:, j].sum()
        assert got["roc_auc"] == pytest.approx(mann_whitney_auc(truth[:, j], scores[:, j]), abs=1e-9)
        expected = (precision[j], recall[j], f1[j])
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx(expected, abs=1e-12)
    expected = averaged(truth, decisions)
    for average in ("micro", "macro"):
        for name in ("precision", "recall", "f1"):
            assert report[average][name] == pytest.approx(expected[average][name], abs=1e-12)
    assert report["micro"]["roc_auc"] == pytest.approx(mann_whitney_auc(truth, scores), abs=1e-9)
    per_label = [mann_whitney_auc(truth[:, j], scores[:, j]) for j in range(len(labels))]
    assert report["macro"]["roc_auc"] == pytest.approx(np.mean(per_label), abs=1e-9)


def test_labels_that_are_the_decisions_score_one_and_warn_on_small_support(
    tiny_artifact: Path, tweets: list[str], scores: np.ndarray, labels: tuple[str, ...], tmp_path: Path
) -> None:
    rows = slice(0, 2000)
    cut = cuts(scores[rows], 0.5)
    truth = draw_labels(scores[rows], cut)
    data = write_jsonl(tmp_path / "exact.jsonl", tweets[rows], truth, labels)

    report, result = evaluate_json(tiny_artifact, data, "--thresholds", thresholds_option(labels, cut))

    tweet_level = report["tweets"]
    for figures in [*tweet_level["labels"].values(), tweet_level["macro"]]:
        assert (figures["f1"], figures["precision"], figures["recall"]) == (1.0, 1.0, 1.0)
        assert figures["roc_auc"] == pytest.approx(1.0, abs=1e-12)  # a sum of trapezoids: 1 - 1e-16
    micro = tweet_level["micro"]
    assert (micro["f1"], micro["precision"], micro["recall"]) == (1.0, 1.0, 1.0)
    reported = np.array([tweet_level["labels"][label]["threshold"] for label in labels], dtype=np.float32)
    assert (reported == cut).all()  # shortest decimals that read back as the same float32
    assert report["variant"] == "fp32" and report["random_weights"] is True and report["data"]["rows"] == 2000
    warned = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warned == [f"warning: {warning}" for warning in tweet_level["warnings"]]
    positive = int(truth[:, 0].sum())  # ~1,000: tweets tied at the median cut all go one way
    assert warned[0] == (
        f"warning: {labels[0]}: {positive:,} positive and {2000 - positive:,} negative tweets; "
        "the model card trusts a label's figures only with at least 5,000 of each"
    )
    assert len(warned) == len(labels)


def test_noisy_labels_on_every_tweet_match_an_independent_computation_without_warnings(
    tiny_artifact: Path, tweets: list[str], scores: np.ndarray, labels: tuple[str, ...], tmp_path: Path
) -> None:
    """24,248 tweets, cut at the median, 10% of each label flipped: >= 5,000 of each class."""
    cut = cuts(scores, 0.5)
    truth = draw_labels(scores, cut, flips=0.10, seed=1)
    data = write_jsonl(tmp_path / "noisy.jsonl", tweets, truth, labels, suffix="")  # columns named <label>
    json_path = tmp_path / "report.json"

    result = evaluate(tiny_artifact, data, "--thresholds", thresholds_option(labels, cut), "--json", json_path)

    assert result.exit_code == 0, result.output
    report = json.loads(json_path.read_text(encoding="utf-8"))
    assert_matches_independent(report["tweets"], labels, truth, scores, scores >= cut)
    assert report["tweets"]["warnings"] == [] and "warning" not in result.stderr
    assert report["data"]["label_columns"] == list(labels)
    assert report["tweets"]["macro"]["f1"] == pytest.approx(0.9, abs=0.02)  # 10% flips cost ~10% of F1
    table = result.stdout
    assert f"{len(tweets):,} tweets" in table and all(label in table for label in labels) and "macro" in table


def test_group_metrics_match_an_independent_computation(
    tiny_artifact: Path, tweets: list[str], scores: np.ndarray, labels: tuple[str, ...], tmp_path: Path
) -> None:
    """Places whose tweets share their labels: a place is a label pattern and one of 4 cities."""
    rows = slice(0, 3000)
    cut = cuts(scores[rows], 0.5)
    truth = draw_labels(scores[rows], cut, flips=0.2, seed=2)
    places = ["".join(map(str, row)) + f"-{i % 4}" for i, row in enumerate(truth.tolist())]
    data = write_jsonl(tmp_path / "places.jsonl", tweets[rows], truth, labels, groups=places)

    report, _ = evaluate_json(tiny_artifact, data, "--group-by", "place",
                              "--thresholds", thresholds_option(labels, cut))

    order = list(dict.fromkeys(places))
    members = {place: [i for i, p in enumerate(places) if p == place] for place in order}
    sums = np.array([scores[rows][members[place]].astype(np.float64).mean(axis=0) for place in order])
    means = sums.astype(np.float32)
    group_truth = np.array([truth[members[place][0]] for place in order])
    assert report["groups"]["unit"] == "groups" and report["groups"]["count"] == len(order)
    assert_matches_independent(report["groups"], labels, group_truth, means, means >= cut)
    assert_matches_independent(report["tweets"], labels, truth, scores[rows], scores[rows] >= cut)


def test_reference_differences_are_nil_for_the_fp32_artifact(
    tiny_artifact: Path, tiny_checkpoint: Path, tweets: list[str], scores: np.ndarray, labels: tuple[str, ...],
    tmp_path: Path,
) -> None:
    rows = slice(5000, 5400)
    cut = cuts(scores[rows], 0.5)
    data = write_jsonl(tmp_path / "ref.jsonl", tweets[rows], draw_labels(scores[rows], cut, flips=0.1), labels)
    json_path = tmp_path / "report.json"
    result = evaluate(tiny_artifact, data, "--reference", tiny_checkpoint,
                      "--thresholds", thresholds_option(labels, cut), "--json", json_path)

    assert result.exit_code == 0, result.output
    assert "PyTorch fp32" in result.stdout and "artifact - reference" in result.stdout
    reference = json.loads(json_path.read_text(encoding="utf-8"))["reference"]
    assert reference["max_abs_prob_diff"] < 1e-5  # fp32 export tolerance is 1e-4; measured ~1e-7
    # Only a score within that difference of its label's cut can flip (the cut is itself a score).
    assert reference["decision_flips"] <= int((np.abs(scores[rows] - cut) <= reference["max_abs_prob_diff"]).sum())
    for level in [*reference["difference"]["tweets"]["labels"].values(), reference["difference"]["tweets"]["macro"]]:
        assert all(abs(value) <= 0.01 for value in level.values())
    assert reference["tweets"]["labels"].keys() == set(labels)


def test_a_one_class_label_has_a_null_roc_auc_not_a_crash(
    tiny_artifact: Path, tweets: list[str], scores: np.ndarray, labels: tuple[str, ...], tmp_path: Path
) -> None:
    truth = draw_labels(scores[:300], cuts(scores[:300], 0.5))
    truth[:, 0] = 0
    data = write_jsonl(tmp_path / "one-class.jsonl", tweets[:300], truth, labels)

    json_path = tmp_path / "report.json"
    result = evaluate(tiny_artifact, data, "--json", json_path)

    assert result.exit_code == 0, result.output
    report = json.loads(json_path.read_text(encoding="utf-8"))
    assert report["tweets"]["labels"][labels[0]]["roc_auc"] is None
    assert f"ROC-AUC of {labels[0]} is undefined: all its tweets are negative" in report["tweets"]["notes"]
    assert "n/a" in result.stdout and f"note: ROC-AUC of {labels[0]} is undefined" in result.stdout


def test_the_artifacts_thresholds_by_default(
    tiny_artifact: Path, tweets: list[str], scores: np.ndarray, labels: tuple[str, ...], tmp_path: Path
) -> None:
    truth = draw_labels(scores[:200], cuts(scores[:200], 0.5))
    data = write_jsonl(tmp_path / "d.jsonl", tweets[:200], truth, labels)
    report, _ = evaluate_json(tiny_artifact, data)
    assert {figures["threshold"] for figures in report["tweets"]["labels"].values()} == {0.5}


@pytest.mark.parametrize(("name", "content", "message"), [
    ("no-text.csv", "tweet,{labels}\nhello,{zeros}\n", "line 1: no column 'text'"),
    ("no-label.csv", "text\nhello\n", "no column '{first}' or '{first}_true'"),
    ("not-binary.csv", "text,{labels}\nhi,{zeros}\nbye,2,{rest}\n", "line 3: column '{first}' must be 0 or 1, got '2'"),
    ("empty.csv", "text,{labels}\n", "no rows to evaluate"),
    ("empty.jsonl", "", "no rows to evaluate"),
])
def test_bad_input_is_one_line_naming_the_file(
    tiny_artifact: Path, labels: tuple[str, ...], tmp_path: Path, name: str, content: str, message: str
) -> None:
    names = {
        "labels": ",".join(labels), "first": labels[0],
        "zeros": ",".join("0" * len(labels)), "rest": ",".join("0" * (len(labels) - 1)),
    }
    path = tmp_path / name
    path.write_text(content.format(**names), encoding="utf-8")

    result = evaluate(tiny_artifact, path)

    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: {path}")
    assert message.format(**names) in result.stderr


def test_rows_of_a_group_that_disagree(tiny_artifact: Path, labels: tuple[str, ...], tmp_path: Path) -> None:
    truth = np.zeros((3, len(labels)), dtype=np.int8)
    truth[2, 1] = 1
    data = write_jsonl(tmp_path / "g.jsonl", ["a", "b", "c"], truth, labels, groups=["Lyon", "Oslo", "Lyon"])
    result = evaluate(tiny_artifact, data, "--group-by", "place")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {data}, line 3: group 'Lyon' has {labels[1]}_true = 1 here but 0 at line 1; "
        "places are labelled per place, so the rows of a group must agree\n"
    )


def test_a_threshold_for_an_unknown_label(
    tiny_artifact: Path, tweets: list[str], labels: tuple[str, ...], tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", tweets[:5], np.zeros((5, len(labels)), dtype=np.int8), labels)
    result = evaluate(tiny_artifact, data, "--thresholds", "nope=0.3")
    assert result.exit_code == 1 and "unknown labels ['nope']" in result.stderr


def test_without_scikit_learn_the_hint_names_the_extra(
    tiny_artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    find_spec = importlib.util.find_spec

    def without_sklearn(name: str, *rest: object) -> object:
        return None if name == "sklearn" else find_spec(name, *rest)

    monkeypatch.setattr(importlib.util, "find_spec", without_sklearn)
    data = tmp_path / "d.csv"
    data.write_text("text\n", encoding="utf-8")
    result = evaluate(tiny_artifact, data)
    assert result.exit_code == 1
    assert result.stderr == (
        "error: this command needs scikit-learn, which is not installed: pip install 'vigil[evaluate]'\n"
    )


def test_the_commands_and_the_runtime_do_not_import_scikit_learn_or_torch() -> None:
    """`vigil classify` must start fast on a lean install: only running evaluate loads them."""
    code = (
        "import sys, vigil.cli.main, vigil.cli.evaluate, vigil.runtime; "
        "print(sorted(name for name in ('sklearn', 'torch', 'transformers') if name in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
