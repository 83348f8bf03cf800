"""Sentence embeddings from the scoring pass: `Classifier.embed`, `predict(..., embeddings=True)`
and the model's pooled output, held to PyTorch's own `pooler_output`.

The reference is computed without vigil: transformers' model and tokenizer on texts cleaned
by the model card's own `clean_tweet`, `model.bert(...).pooler_output`, normalised in numpy.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from model_card import card_clean_tweet

from vigil.runtime import ArtifactError, Classifier, ClosedError, EmbeddedBatch, InputError, Predictions
from vigil.runtime import engine as engine_module
from vigil.runtime.manifest import Manifest
from vigil.runtime.model import BoundModel, open_model
from vigil.runtime.providers import SessionPlan, plan_sessions
from vigil.runtime.tokenizer import SharedTokenizer

CPU = "CPUExecutionProvider"


def _open(artifact: Path, **options: object) -> Classifier:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-weight warning
        return Classifier.open(artifact, provider="cpu", **options)


@pytest.fixture(scope="module")
def classifier(tiny_artifact: Path) -> Iterator[Classifier]:
    with _open(tiny_artifact, variant="fp32") as opened:
        yield opened


@pytest.fixture(scope="module")
def tweets(shared_tweets: dict[str, list[str]]) -> list[str]:
    return [t for lines in shared_tweets.values() for t in lines[:40]]  # 240 tweets of every length


def pooler_output(checkpoint: Path, texts: list[str]) -> np.ndarray:
    """PyTorch's pooler output for TEXTS, cleaned as the card cleans them: the reference."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint)
    model = transformers.BertForSequenceClassification.from_pretrained(checkpoint).eval()
    batch = tokenizer([card_clean_tweet(t) for t in texts], truncation=True, max_length=32,
                      padding="max_length", return_tensors="pt")
    with torch.no_grad():
        return model.bert(**batch).pooler_output.double().numpy()


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (unit(a.astype(np.float64)) * unit(b.astype(np.float64))).sum(axis=1)


# --- against PyTorch ------------------------------------------------------------------


def test_embed_is_pytorch_s_pooler_output_normalised(classifier: Classifier, tiny_checkpoint: Path, tweets) -> None:
    reference = pooler_output(tiny_checkpoint, tweets)
    raw = classifier.embed(tweets, normalize=False)
    assert raw.shape == (len(tweets), 32) and raw.dtype == np.float32  # the checkpoint's hidden size
    np.testing.assert_allclose(raw, reference, rtol=0, atol=1e-5)
    normalised = classifier.embed(tweets)
    assert normalised.dtype == np.float32
    np.testing.assert_allclose(normalised, unit(reference), rtol=0, atol=1e-5)
    assert not np.allclose(normalised, normalised[:1], atol=1e-2), "different tweets should embed differently"


@pytest.mark.parametrize("variant", ["fp16", "fp16-fused"])
def test_fp16_embeddings_point_where_pytorch_s_do(tiny_artifact: Path, tiny_checkpoint: Path, tweets, variant: str) -> None:
    with _open(tiny_artifact, variant=variant) as fp16:
        embeddings = fp16.embed(tweets)
    assert cosines(embeddings, pooler_output(tiny_checkpoint, tweets)).min() >= 0.999


def test_real_weights_embed_as_pytorch_does(int8_artifact: Path, minilm_checkpoint: Path, tweets) -> None:
    """MiniLM's trained weights: 384 wide, and the fp32 variant within float reordering."""
    with _open(int8_artifact, variant="fp32") as fp32:
        embeddings = fp32.embed(tweets, normalize=False)
    reference = pooler_output(minilm_checkpoint, tweets)
    assert embeddings.shape == (len(tweets), 384)
    np.testing.assert_allclose(embeddings, reference, rtol=0, atol=1e-4)
    assert cosines(embeddings, reference).min() >= 0.99999


# --- one pass, input order, normalisation ---------------------------------------------


def test_predict_gives_scores_and_embeddings_from_one_pass(classifier: Classifier, tweets, monkeypatch) -> None:
    runs: list[int] = []
    run_with_pooled = classifier.model.run_with_pooled
    monkeypatch.setattr(classifier.model, "run", lambda *a: pytest.fail("a second, scores-only run"))
    monkeypatch.setattr(classifier.model, "run_with_pooled", lambda ids, mask: runs.append(len(ids)) or run_with_pooled(ids, mask))
    predicted = classifier.predict(tweets, batch_size=50, embeddings=True)
    assert isinstance(predicted, Predictions) and sum(runs) == len(tweets)
    monkeypatch.undo()
    np.testing.assert_array_equal(predicted.probabilities, classifier.predict(tweets, batch_size=50))
    np.testing.assert_array_equal(predicted.embeddings, classifier.embed(tweets, batch_size=50))


def test_embeddings_come_back_in_input_order_across_length_windows(
    classifier: Classifier, tweets: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bulk embedding sorts each window by length; every row must land back at its text."""
    assert classifier.sequence_buckets
    monkeypatch.setattr(engine_module, "_WINDOW", 100)  # several windows of 96 texts
    alone = np.concatenate([classifier.embed([text]) for text in tweets])
    batches = list(classifier.iter_batches(iter(tweets), batch_size=16, embeddings=True))
    assert all(isinstance(batch, EmbeddedBatch) for batch in batches)
    assert [batch.start for batch in batches] == list(range(0, len(tweets), 16))
    together = np.concatenate([batch.embeddings for batch in batches])
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-6)
    probabilities = np.concatenate([batch.probabilities for batch in batches])
    np.testing.assert_allclose(probabilities, classifier.predict(tweets, batch_size=16), rtol=0, atol=1e-6)
    assert len({round(float(row[0]), 6) for row in together}) > len(tweets) // 2  # rows are not all alike


def test_normalize_gives_unit_rows_and_false_the_raw_pooler_output(classifier: Classifier, tweets) -> None:
    raw = classifier.embed(tweets, normalize=False)
    normalised = classifier.embed(tweets)
    np.testing.assert_allclose(np.linalg.norm(normalised, axis=1), 1.0, rtol=0, atol=1e-6)
    assert np.abs(np.linalg.norm(raw, axis=1) - 1.0).max() > 0.1
    np.testing.assert_allclose(normalised, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=0, atol=1e-6)
    assert classifier.predict(tweets[:3], embeddings=True, normalize=False).embeddings.tolist() == raw[:3].tolist()


def test_l2_normalize_leaves_a_zero_row_zero() -> None:
    rows = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    assert engine_module.l2_normalize(rows).tolist() == [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]


def test_no_texts_no_rows(classifier: Classifier) -> None:
    empty = classifier.embed([])
    assert empty.shape == (0, 32) and empty.dtype == np.float32
    assert classifier.predict(iter([]), embeddings=True).probabilities.shape == (0, 6)


# --- bad input, as for classify ----------------------------------------------------------


@pytest.mark.parametrize(("bad", "type_name"), [(None, "NoneType"), (42, "int")])
def test_a_non_str_item_is_an_input_error_naming_its_index(classifier: Classifier, bad: object, type_name: str) -> None:
    texts = ["fine"] * 70 + [bad] + ["fine"]
    with pytest.raises(InputError, match=f"text 70 is {type_name}, not str"):
        classifier.embed(texts, batch_size=32)


def test_arguments_are_checked_as_for_classify(tiny_artifact: Path) -> None:
    classifier = _open(tiny_artifact, variant="fp32")
    with pytest.raises(TypeError, match="got one str"):
        classifier.embed("a tweet")
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        classifier.embed(["x"], batch_size=0)
    classifier.close()
    with pytest.raises(ClosedError, match="closed"):
        classifier.embed(["x"])


# --- artifacts that cannot embed ----------------------------------------------------------


def test_an_old_artifact_classifies_and_refuses_to_embed_naming_the_remedy(
    old_artifact: Path, classifier: Classifier, tweets: list[str]
) -> None:
    with _open(old_artifact, variant="fp32") as old:
        np.testing.assert_array_equal(old.predict(tweets), classifier.predict(tweets))
        assert old.embedding_problem is not None and "re-export" in old.embedding_problem
        message = f"cannot embed with {old_artifact}: the artifact has no pooled output.*re-export it with `vigil export`"
        with pytest.raises(ArtifactError, match=message):
            old.embed(tweets)
        with pytest.raises(ArtifactError, match="no pooled output"):
            old.iter_batches(iter(tweets), embeddings=True)  # at once, not at the first next()
        with pytest.raises(ArtifactError, match="no pooled output"):
            old.predict(tweets, embeddings=True)
        with pytest.raises(ArtifactError, match="no pooled output"):
            _ = old.embedding_width


def _with_failed_embeddings(artifact: Path, tmp_path: Path, variant: str) -> Path:
    """A copy whose VARIANT's embeddings missed their tolerance at export (as int8's may)."""
    copy = tmp_path / "artifact"
    shutil.copytree(artifact, copy)
    raw = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    raw["variants"][variant]["pooled_validation"].update(passed=False, min_cosine=0.93)
    (copy / "manifest.json").write_text(json.dumps(raw), encoding="utf-8")
    return copy


def test_a_variant_whose_embeddings_missed_their_tolerance_scores_but_does_not_embed(
    tiny_artifact: Path, tmp_path: Path
) -> None:
    with _open(_with_failed_embeddings(tiny_artifact, tmp_path, "fp32"), variant="fp32") as failed:
        assert failed.predict(["hello"]).shape == (1, 6)
        with pytest.raises(ArtifactError, match=r"variant 'fp32' missed its embeddings' tolerance .*0\.9300.*embed with variant 'fp32'"):
            failed.embed(["hello"])


def test_a_caller_that_embeds_gets_fp32_where_int8_s_embeddings_missed(int8_artifact: Path) -> None:
    manifest = Manifest.load(int8_artifact)
    int8 = manifest.variants["int8"]
    failed = dataclasses.replace(int8, pooled_validation={**int8.pooled_validation, "passed": False})
    flagged = dataclasses.replace(manifest, variants={**manifest.variants, "int8": failed})
    passed = dataclasses.replace(int8, pooled_validation={**int8.pooled_validation, "passed": True})
    trusted = dataclasses.replace(manifest, variants={**manifest.variants, "int8": passed})
    assert [p.variant for p in plan_sessions(flagged, "cpu", None, [CPU])] == ["int8"]  # classification
    assert [p.variant for p in plan_sessions(flagged, "cpu", None, [CPU], embeddings=True)] == ["fp32"]
    assert [p.variant for p in plan_sessions(trusted, "cpu", None, [CPU], embeddings=True)] == ["int8"]
    assert [p.variant for p in plan_sessions(flagged, "cpu", "int8", [CPU], embeddings=True)] == ["int8"]  # asked


def test_open_for_embeddings_runs_a_variant_that_embeds(int8_artifact: Path) -> None:
    with Classifier.open(int8_artifact, provider="cpu", embeddings=True) as clf:
        assert clf.embedding_problem is None
        assert clf.embed(["hello"]).shape == (1, 384)


def test_a_manifest_whose_pooled_width_the_graph_lacks_is_refused(tiny_artifact: Path, tmp_path: Path) -> None:
    copy = tmp_path / "artifact"
    shutil.copytree(tiny_artifact, copy)
    raw = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    raw["pooled"]["width"] = 31
    (copy / "manifest.json").write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"must return 'pooled' of shape \[batch, 31\]"):
        _open(copy, variant="fp32")


# --- the model: the pooled output is fetched only when asked for --------------------------


class _RecordingSession:
    """An InferenceSession that records which outputs each run fetched."""

    def __init__(self, session) -> None:
        self._session = session
        self.fetched: list[list[str]] = []

    def __getattr__(self, name: str):
        return getattr(self._session, name)

    def run(self, names, feeds):
        self.fetched.append(list(names))
        return self._session.run(names, feeds)


def test_classification_fetches_only_the_logits(tiny_artifact: Path) -> None:
    with _open(tiny_artifact, variant="fp32") as clf:
        recording = _RecordingSession(clf.model.session)
        clf.model.session = recording
        clf.predict(["a tweet", "another"])
        clf.embed(["a tweet"])
    assert recording.fetched == [["logits"], ["logits", "pooled"]]


class _CountingBuffer:
    """A bound output buffer that counts the copies made of it."""

    def __init__(self, buffer) -> None:
        self._buffer = buffer
        self.copies = 0

    def numpy(self) -> np.ndarray:
        self.copies += 1
        return self._buffer.numpy()


@pytest.fixture
def bound(tiny_artifact: Path) -> Iterator[BoundModel]:
    """The CUDA plan's bound slots and graph ids, on CPU buffers."""
    manifest = Manifest.load(tiny_artifact)
    tokenizer = SharedTokenizer(manifest.directory / manifest.tokenizer_file, 32, manifest.pad_id)
    plan = SessionPlan(CPU, "fp16-fused", ((CPU, {}),), buckets=(1, 2, 4), cuda_graphs=True)
    model = open_model(manifest, [plan], filler=tokenizer.encode([""]))
    assert isinstance(model, BoundModel)
    yield model
    model.close()


def test_bound_slots_copy_the_pooled_output_only_when_asked(bound: BoundModel, tiny_artifact: Path, classifier) -> None:
    counting = [_CountingBuffer(slot.pooled) for slot in bound._slots]
    bound._slots = [dataclasses.replace(slot, pooled=buffer) for slot, buffer in zip(bound._slots, counting)]
    ids, mask = classifier.encode(["a short tweet", "rain", "the weather today is fine"])
    logits = bound.run(ids, mask)
    assert sum(buffer.copies for buffer in counting) == 0
    both = bound.run_with_pooled(ids, mask)
    assert sum(buffer.copies for buffer in counting) == 1
    with _open(tiny_artifact, variant="fp16-fused") as plain:
        expected = plain.model.run_with_pooled(ids, mask)
    np.testing.assert_allclose(logits, expected[0], rtol=0, atol=1e-5)
    for got, want in zip(both, expected):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_bound_results_do_not_alias_the_pooled_buffer(bound: BoundModel, classifier: Classifier) -> None:
    ids, mask = classifier.encode(["one", "two", "three", "four"])
    _, first = bound.run_with_pooled(ids[:2], mask[:2])
    kept = first.copy()
    bound.run_with_pooled(ids[2:], mask[2:])
    np.testing.assert_array_equal(first, kept)


def test_bound_model_runs_batches_beyond_its_largest_slot(bound: BoundModel, classifier: Classifier, tweets) -> None:
    ids, mask = classifier.encode(tweets[:11])
    logits, pooled = bound.run_with_pooled(ids, mask)
    assert logits.shape == (11, 6) and pooled.shape == (11, 32)
    np.testing.assert_allclose(pooled[4:8], bound.run_with_pooled(ids[4:8], mask[4:8])[1], rtol=0, atol=1e-6)


def test_an_old_artifact_binds_no_pooled_buffer(old_artifact: Path) -> None:
    manifest = Manifest.load(old_artifact)
    tokenizer = SharedTokenizer(manifest.directory / manifest.tokenizer_file, 32, manifest.pad_id)
    plan = SessionPlan(CPU, "fp32", ((CPU, {}),), buckets=(1, 2))
    model = open_model(manifest, [plan], filler=tokenizer.encode([""]))
    assert all(slot.pooled is None for slot in model._slots)
    with pytest.raises(ArtifactError, match="no pooled output"):
        model.run_with_pooled(*tokenizer.encode(["x"]))
