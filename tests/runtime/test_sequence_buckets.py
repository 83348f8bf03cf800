"""Sequence buckets: each batch runs at the smallest bucket that holds its longest text
(on the CPU as it is, on a GPU in that bucket's bound slot), bulk scoring groups texts by
length and restores input order, and artifacts without buckets (or with a static graph)
keep running at the full length."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from vigil.runtime import Classifier
from vigil.runtime import engine as engine_module
from vigil.runtime import model as model_module
from vigil.runtime.errors import ArtifactError
from vigil.runtime.manifest import Manifest
from vigil.runtime.model import open_model
from vigil.runtime.providers import SessionPlan
from vigil.runtime.tokenizer import SharedTokenizer


def _open(artifact: Path, variant: str = "fp32") -> Classifier:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-weight warning
        return Classifier.open(artifact, provider="cpu", variant=variant)


@pytest.fixture(scope="module")
def classifier(tiny_artifact: Path) -> Iterator[Classifier]:
    with _open(tiny_artifact) as opened:
        yield opened


@pytest.fixture(scope="module")
def tweets(shared_tweets: dict[str, list[str]]) -> list[str]:
    return [t for lines in shared_tweets.values() for t in lines[:60]]


def _widths(classifier: Classifier, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Record the [rows, positions] of every model run from now on."""
    shapes: list[tuple[int, int]] = []
    run = classifier.model.run

    def recording(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        assert ids.shape == mask.shape and ids.flags.c_contiguous
        shapes.append(ids.shape)
        return run(ids, mask)

    monkeypatch.setattr(classifier.model, "run", recording)
    return shapes


def _full_length(classifier: Classifier, texts: list[str]) -> np.ndarray:
    """The scores at 32 positions, run straight on the model: what buckets must not change."""
    return engine_module.sigmoid(classifier.model.run(*classifier.encode(texts)))


def test_the_cpu_classifier_runs_the_manifest_buckets(classifier: Classifier) -> None:
    assert classifier.sequence_buckets == (16, 24, 32)


@pytest.mark.parametrize(
    ("texts", "runs"),
    [
        (["hi"], [(1, 16)]),
        (["hi", "a b"], [(2, 16)]),
        (["word " * 20, "hi", "word " * 40, "a b"], [(2, 16), (1, 24), (1, 32)]),
    ],
)
def test_on_the_cpu_a_batch_runs_once_per_bucket_of_its_texts(
    classifier: Classifier, monkeypatch: pytest.MonkeyPatch, texts: list[str], runs: list[tuple[int, int]]
) -> None:
    """Each text at the smallest bucket that holds it, scores back in their rows."""
    expected = _full_length(classifier, texts)
    shapes = _widths(classifier, monkeypatch)
    ids, mask = classifier.encode(texts)
    np.testing.assert_allclose(classifier.score(ids, mask), expected, rtol=0, atol=1e-6)
    assert shapes == runs


def test_bulk_groups_by_length_and_restores_input_order(
    classifier: Classifier, tweets: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "_WINDOW", 100)  # several windows of 96 texts
    expected = _full_length(classifier, tweets)
    shapes = _widths(classifier, monkeypatch)
    batches = list(classifier.iter_batches(iter(tweets), batch_size=16))
    assert [batch.start for batch in batches] == list(range(0, len(tweets), 16))
    np.testing.assert_allclose(np.concatenate([b.probabilities for b in batches]), expected, rtol=0, atol=1e-6)
    lengths = classifier.encode(tweets)[1].sum(axis=1)
    # Sorting each window by length leaves at most one batch per window per bucket boundary
    # mixed, so fewer positions are computed than one bucket per input-order batch needs.
    input_order = sum(
        min(w for w in (16, 24, 32) if w >= lengths[i : i + 16].max()) * len(lengths[i : i + 16])
        for i in range(0, len(lengths), 16)
    )
    computed = sum(rows * width for rows, width in shapes)
    assert sum(rows for rows, _ in shapes) == len(tweets)
    assert computed < input_order and {16, 24, 32} <= {width for _, width in shapes}


def test_a_service_style_stack_of_rows_is_cut_to_its_bucket(classifier: Classifier, monkeypatch) -> None:
    """Rows encoded one by one and stacked (as the service's batcher does) share one width."""
    rows = [classifier.encode([text]) for text in ("a", "b c", "word " * 12)]
    ids, mask = (np.concatenate([row[k] for row in rows]) for k in (0, 1))
    shapes = _widths(classifier, monkeypatch)
    classifier.score(ids, mask)
    assert shapes == [(3, 16)]


def _without_buckets(tiny_artifact: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "artifact"
    shutil.copytree(tiny_artifact, copy)
    path = copy / "manifest.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    del raw["sequence_buckets"]
    path.write_text(json.dumps(raw), encoding="utf-8")
    return copy


def test_an_artifact_without_buckets_runs_its_static_graph_at_full_length(
    tiny_artifact: Path, tmp_path: Path, tweets: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with _open(_without_buckets(tiny_artifact, tmp_path), variant="fp16") as old:
        assert old.sequence_buckets == ()
        expected = _full_length(old, tweets[:40])
        shapes = _widths(old, monkeypatch)
        np.testing.assert_array_equal(old.predict(tweets[:40], batch_size=16), expected)
        assert shapes == [(16, 32), (16, 32), (8, 32)]


def test_a_static_graph_is_never_cut(tiny_artifact: Path) -> None:
    with _open(tiny_artifact, variant="fp16") as static:
        assert static.sequence_buckets == ()


def test_a_symbolic_graph_without_buckets_is_refused(tiny_artifact: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="sequence_length 32"):
        _open(_without_buckets(tiny_artifact, tmp_path))


@pytest.mark.parametrize("bad", [[16, 24], [24, 16, 32], [0, 32], [16, 16, 32]])
def test_malformed_buckets_are_refused(tiny_artifact: Path, tmp_path: Path, bad: list[int]) -> None:
    copy = _without_buckets(tiny_artifact, tmp_path)
    path = copy / "manifest.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**raw, "sequence_buckets": bad}), encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"sequence_buckets .* rise strictly"):
        _open(copy)


def test_the_gpu_path_runs_the_fused_fp16_graph_in_a_slot_per_sequence_bucket(
    tiny_artifact: Path, tweets: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CUDA plan's bound slots and graph ids, exercised on CPU buffers: every batch runs
    in the slot of its (batch, sequence) bucket and scores as the unbound graph does."""
    manifest = Manifest.load(tiny_artifact)
    tokenizer = SharedTokenizer(manifest.directory / manifest.tokenizer_file, 32, manifest.pad_id)
    cpu = "CPUExecutionProvider"
    plan = SessionPlan(cpu, "fp16-fused", ((cpu, {}),), buckets=(1, 2, 4, 8, 16), cuda_graphs=True)
    used: list[tuple[int, int]] = []
    run = model_module._Slot.run

    def recording(self, session, ids, mask):
        used.append((self.size, self.width))
        return run(self, session, ids, mask)

    with _open(tiny_artifact, "fp16-fused") as plain:
        expected = plain.predict(tweets, batch_size=16)
        model = open_model(manifest, [plan], filler=tokenizer.encode([""]))
        with Classifier(manifest, model, tokenizer=tokenizer) as bound:
            assert bound.sequence_buckets == (16, 24, 32)
            monkeypatch.setattr(model_module._Slot, "run", recording)
            np.testing.assert_allclose(bound.predict(tweets, batch_size=16), expected, rtol=0, atol=1e-6)
    assert {width for _, width in used} == {16, 24, 32} and {size for size, _ in used} == {16}
    assert len(used) == -(-len(tweets) // 16)


@pytest.mark.parametrize(
    ("symbolic", "device", "requested", "expected"),
    [
        (True, "cpu", None, (16, 24, 32)),  # the CPU runs its buckets by default
        (True, "cuda", None, ()),  # a GPU does not, unless asked: measured slower on an H200
        (True, "cuda", True, (16, 24, 32)),
        (True, "cpu", False, ()),
        (False, "cpu", True, ()),  # a fixed sequence axis can only run at its length
    ],
)
def test_which_buckets_a_model_runs(symbolic: bool, device: str, requested: bool | None, expected: tuple) -> None:
    assert model_module.GPU_SEQUENCE_BUCKETS is False
    assert model_module.sequence_widths((16, 24, 32), symbolic, device, requested) == expected


def test_buckets_can_be_turned_off(tiny_artifact: Path, tweets: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = Classifier.open(tiny_artifact, provider="cpu", variant="fp32", sequence_buckets=False)
    with full:
        assert full.sequence_buckets == ()
        shapes = _widths(full, monkeypatch)
        full.predict(tweets[:40], batch_size=16)
        assert {width for _, width in shapes} == {32}


def test_scores_and_embeddings_of_a_mixed_batch_come_back_in_their_rows(classifier: Classifier) -> None:
    texts = ["word " * 20, "hi", "word " * 40, "a b"]
    ids, mask = classifier.encode(texts)
    probabilities, embeddings = classifier.score_and_embed(ids, mask)
    for row, text in enumerate(texts):
        alone = classifier.score_and_embed(*classifier.encode([text]))
        np.testing.assert_allclose(probabilities[row], alone[0][0], rtol=0, atol=1e-6)
        np.testing.assert_allclose(embeddings[row], alone[1][0], rtol=0, atol=1e-6)
