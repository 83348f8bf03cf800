"""Opening an artifact checks every file the manifest lists and the graph against the manifest."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from vigil.runtime import Classifier
from vigil.runtime.errors import ArtifactError


def _copy(tiny_artifact: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "artifact"
    shutil.copytree(tiny_artifact, copy)
    return copy


def _open(artifact: Path) -> Classifier:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-weight warning
        return Classifier.open(artifact, provider="cpu", variant="fp32")


def _edit_manifest(artifact: Path, **changes: object) -> None:
    path = artifact / "manifest.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw.update(changes)
    path.write_text(json.dumps(raw), encoding="utf-8")


def test_a_swapped_tokenizer_is_refused(tiny_artifact: Path, tmp_path: Path) -> None:
    artifact = _copy(tiny_artifact, tmp_path)
    tokenizer = artifact / "tokenizer.json"
    raw = json.loads(tokenizer.read_text(encoding="utf-8"))
    vocab = raw["model"]["vocab"]
    first, second = list(vocab)[1000:1002]
    vocab[first], vocab[second] = vocab[second], vocab[first]  # still a valid tokenizer
    tokenizer.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"tokenizer file .* sha256"):
        _open(artifact)


def test_a_sequence_length_the_graph_lacks_is_refused_in_one_line(tiny_artifact: Path, tmp_path: Path) -> None:
    artifact = _copy(tiny_artifact, tmp_path)
    _edit_manifest(artifact, sequence_length=64)
    with pytest.raises(ArtifactError, match="sequence_length 64") as info:
        _open(artifact)
    assert "\n" not in str(info.value)


def test_a_label_count_the_graph_lacks_is_refused(tiny_artifact: Path, tmp_path: Path) -> None:
    artifact = _copy(tiny_artifact, tmp_path)
    labels = json.loads((artifact / "manifest.json").read_text(encoding="utf-8"))["labels"]
    _edit_manifest(artifact, labels=labels[:-1], thresholds={})
    with pytest.raises(ArtifactError, match=f"{len(labels) - 1} labels"):
        _open(artifact)


def test_the_untouched_artifact_opens(tiny_artifact: Path) -> None:
    with _open(tiny_artifact) as classifier:
        assert classifier.predict(["hello"]).shape == (1, len(classifier.labels))
