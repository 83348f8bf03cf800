"""Tests for vigil.runtime.service: a Classifier behind the dynamic Batcher.

The batcher's own rules (deadlines, draining, shutdown) are tested in test_batcher.py; here
each request must get its own row, equal to scoring that text alone, and the service must
fail, cancel, push back and close per request. Ordering is forced with Events on a gated
`score`, never with sleeps.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from helpers import wait_for

from vigil.runtime import (
    ArtifactError,
    BatcherClosedError,
    BatcherConfig,
    BatchRecord,
    Classifier,
    InputError,
    OverloadedError,
    Service,
)
from vigil.runtime.manifest import Manifest
from vigil.runtime.model import BoundModel, Replicas, open_model
from vigil.runtime.providers import SessionPlan

TIMEOUT = 30.0
ATOL = 1e-6  # batch composition may reorder float sums; nothing more


class GatedScore:
    """Wraps `Classifier.score`: records batch sizes, blocks while closed, can fail once."""

    def __init__(self, classifier: Classifier, fail_on_call: int | None = None) -> None:
        self.score = classifier.score
        self.fail_on_call = fail_on_call
        self.calls: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def hold(self) -> None:
        self.release.clear()
        self.entered.clear()

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self.calls.append(len(ids))
        self.entered.set()
        assert self.release.wait(TIMEOUT), "gate never released"
        if len(self.calls) == self.fail_on_call:
            raise RuntimeError("injected model failure")
        return self.score(ids, mask)


@pytest.fixture(scope="module")
def classifier(tiny_artifact: Path) -> Iterator[Classifier]:
    with pytest.warns(UserWarning, match="random-weight"):
        opened = Classifier.open(tiny_artifact, provider="cpu", variant="fp32")
    with opened:
        yield opened


@pytest.fixture(scope="module")
def texts(shared_tweets: dict[str, list[str]]) -> list[str]:
    return [t for lines in shared_tweets.values() for t in lines[:40]]  # 240 tweets, 6 languages


@pytest.fixture(scope="module")
def buckets(classifier: Classifier, texts: list[str]) -> dict[str, int]:
    """Each text's sequence bucket: on the CPU a Service batch holds texts of one bucket."""
    lengths = classifier.encode(texts)[1].sum(axis=1)
    return {text: int(np.searchsorted(classifier.sequence_buckets, n)) for text, n in zip(texts, lengths)}


@pytest.fixture(scope="module")
def one_bucket(texts: list[str], buckets: dict[str, int]) -> list[str]:
    """20 texts of one sequence bucket, which the Service batches together."""
    common = max(set(buckets.values()), key=list(buckets.values()).count)
    same = [text for text in texts if buckets[text] == common]
    assert len(same) >= 20, "the shared tweets' most common bucket holds too few texts"
    return same[:20]


@pytest.fixture(scope="module")
def alone(classifier: Classifier, texts: list[str]) -> dict[str, np.ndarray]:
    """Each text scored on its own with predict: what the service must reproduce."""
    return {text: classifier.predict([text])[0] for text in texts}


@pytest.fixture
def gate(classifier: Classifier, monkeypatch: pytest.MonkeyPatch) -> GatedScore:
    gated = GatedScore(classifier)
    monkeypatch.setattr(classifier, "score", gated)
    return gated


def hold_first_batch(service: Service, gate: GatedScore, text: str = "first") -> Future[np.ndarray]:
    gate.hold()
    first = service.submit(text)
    assert gate.entered.wait(TIMEOUT)
    return first


def test_many_threads_each_get_exactly_their_own_row(classifier: Classifier, texts: list[str], alone) -> None:
    requests = [texts[i % len(texts)] for i in range(4000)]
    config = BatcherConfig(max_batch_size=64, max_wait_s=0.001, queue_size=8192)
    records: list[BatchRecord] = []
    with Service(classifier, config, observer=records.append) as service, ThreadPoolExecutor(8) as pool:
        futures = list(pool.map(service.submit, requests))
        results = [f.result(TIMEOUT) for f in futures]
    assert len(results) == len(requests) == sum(r.size for r in records)  # none lost, none twice
    for text, row in zip(requests, results):
        assert row.shape == (6,) and row.dtype == np.float32
        np.testing.assert_allclose(row, alone[text], rtol=0, atol=ATOL)


def test_submit_async_gets_each_awaiting_task_its_own_row(classifier: Classifier, texts: list[str], alone) -> None:
    async def main(service: Service) -> list[np.ndarray]:
        return await asyncio.gather(*(service.submit_async(text) for text in texts * 4))

    with Service(classifier, BatcherConfig(queue_size=2048)) as service:
        results = asyncio.run(main(service))
    for text, row in zip(texts * 4, results):
        np.testing.assert_allclose(row, alone[text], rtol=0, atol=ATOL)


@pytest.mark.parametrize("bad", [None, 7, b"bytes"])
def test_a_bad_request_fails_at_submit_and_is_never_queued(classifier: Classifier, gate: GatedScore, bad: object) -> None:
    with Service(classifier) as service:
        with pytest.raises(InputError, match=f"is {type(bad).__name__}, not str"):
            service.submit(bad)
        with pytest.raises(InputError):
            asyncio.run(service.submit_async(bad))
        assert service.queue_depth == 0
        assert service.submit("fine").result(TIMEOUT).shape == (6,)
    assert gate.calls == [1]


def test_a_failing_batch_fails_only_its_own_requests(classifier: Classifier, gate: GatedScore, alone, one_bucket) -> None:
    gate.fail_on_call = 2
    with Service(classifier) as service:
        first = hold_first_batch(service, gate, one_bucket[7])
        doomed = [service.submit(text) for text in one_bucket[:5]]  # queued: they form batch 2
        gate.release.set()
        np.testing.assert_allclose(first.result(TIMEOUT), alone[one_bucket[7]], rtol=0, atol=ATOL)
        for future in doomed:
            with pytest.raises(RuntimeError, match="injected model failure"):
                future.result(TIMEOUT)
        after = service.submit(one_bucket[6])
        np.testing.assert_allclose(after.result(TIMEOUT), alone[one_bucket[6]], rtol=0, atol=ATOL)
    assert gate.calls == [1, 5, 1]


def test_close_answers_every_request_in_flight(classifier: Classifier, gate: GatedScore, texts, alone) -> None:
    service = Service(classifier, BatcherConfig(max_batch_size=16))
    first = hold_first_batch(service, gate)
    queued = [service.submit(text) for text in texts]
    closer = threading.Thread(target=service.close)
    closer.start()
    gate.release.set()
    closer.join(TIMEOUT)
    assert not closer.is_alive()
    assert first.done() and all(f.done() for f in queued)
    for text, future in zip(texts, queued):
        np.testing.assert_allclose(future.result(), alone[text], rtol=0, atol=ATOL)
    with pytest.raises(BatcherClosedError):
        service.submit("late")


def test_close_can_cancel_what_is_still_queued(classifier: Classifier, gate: GatedScore) -> None:
    service = Service(classifier)
    first = hold_first_batch(service, gate)
    queued = [service.submit(f"tweet {i}") for i in range(10)]
    service.close(wait=False, cancel_pending=True)
    gate.release.set()
    assert first.result(TIMEOUT).shape == (6,)
    assert all(f.cancelled() for f in queued)
    service.close()
    assert gate.calls == [1]


def test_a_cancelled_request_costs_no_compute(classifier: Classifier, gate: GatedScore) -> None:
    with Service(classifier) as service:
        hold_first_batch(service, gate)
        cancelled, kept = service.submit("cancel me"), service.submit("keep me")
        assert cancelled.cancel()
        gate.release.set()
        assert kept.result(TIMEOUT).shape == (6,)
        with pytest.raises(CancelledError):
            cancelled.result()
    assert gate.calls == [1, 1]


def test_a_full_queue_pushes_back(classifier: Classifier, gate: GatedScore) -> None:
    with Service(classifier, BatcherConfig(queue_size=2)) as service:
        hold_first_batch(service, gate)
        waiting = [service.submit("a"), service.submit("b")]
        with pytest.raises(OverloadedError, match="queue is full"):
            service.submit("c")
        with pytest.raises(OverloadedError):
            service.submit("d", timeout=0.01)
        gate.release.set()
        assert all(f.result(TIMEOUT).shape == (6,) for f in waiting)


def test_the_observer_sees_every_batch(classifier: Classifier) -> None:
    records: list[BatchRecord] = []
    with Service(classifier, observer=records.append) as service:
        for _ in range(3):
            service.submit("hello").result(TIMEOUT)
    assert [r.size for r in records] == [1, 1, 1] and all(r.error is None for r in records)


@pytest.mark.parametrize("tokenize_ahead", [False, True])
def test_with_cuda_graphs_every_run_goes_through_the_one_graph_thread(
    classifier: Classifier, tiny_artifact: Path, texts: list[str], alone, monkeypatch: pytest.MonkeyPatch,
    tokenize_ahead: bool,
) -> None:
    # The GPU path on CPU buffers: buckets, padding rows, and graphs captured once, on one
    # thread, which then runs every batch whoever asks (a dispatcher, a thread pool), with
    # or without texts tokenized ahead on a thread of their own.
    manifest = Manifest.load(tiny_artifact)
    plan = SessionPlan("CPUExecutionProvider", "fp32", (("CPUExecutionProvider", {}),), (1, 2, 4, 8), cuda_graphs=True)
    model = open_model(manifest, [plan], filler=classifier.encode([""]))
    assert isinstance(model, BoundModel)
    graph_thread = model.graph_thread
    assert graph_thread is not None and graph_thread is not threading.current_thread()
    ran_on: set[threading.Thread] = set()
    warm_ups: list[threading.Thread] = []
    run_bucket, warm_up = model._run_bucket, model._warm_up
    monkeypatch.setattr(model, "_run_bucket", lambda *a: ran_on.add(threading.current_thread()) or run_bucket(*a))
    monkeypatch.setattr(model, "_warm_up", lambda: warm_ups.append(threading.current_thread()) or warm_up())
    with Classifier(manifest, model) as bound:
        with Service(
            bound, BatcherConfig(max_batch_size=8), name="graphs", tokenize_ahead=tokenize_ahead
        ) as service, ThreadPoolExecutor(4) as pool:
            futures = list(pool.map(service.submit, texts))
            for text, future in zip(texts, futures):
                np.testing.assert_allclose(future.result(TIMEOUT), alone[text], rtol=0, atol=1e-5)
            direct = list(pool.map(lambda t: bound.predict([t])[0], texts[:16]))
        for text, row in zip(texts, direct):
            np.testing.assert_allclose(row, alone[text], rtol=0, atol=1e-5)
    assert ran_on == {graph_thread}
    assert warm_ups == []  # captured once, at open; never again per caller
    assert not graph_thread.is_alive()  # closing the classifier stopped it


def record_threads(model: BoundModel, monkeypatch: pytest.MonkeyPatch) -> set[threading.Thread]:
    """The threads MODEL's runs will run on, filled in as they run."""
    threads: set[threading.Thread] = set()
    run_bucket = model._run_bucket

    def recorded(*args: object) -> tuple[np.ndarray, ...]:
        threads.add(threading.current_thread())
        return run_bucket(*args)

    monkeypatch.setattr(model, "_run_bucket", recorded)
    return threads


def test_with_two_replicas_two_batches_are_in_flight_each_on_its_own_graph_thread(
    classifier: Classifier, tiny_artifact: Path, texts: list[str], alone, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A dispatcher per replica: while one replica holds a batch, a request runs at once on
    # the other; under load every text still gets its own row, each replica's runs on the
    # graph thread that captured its graphs.
    manifest = Manifest.load(tiny_artifact)
    plan = SessionPlan("CPUExecutionProvider", "fp32", (("CPUExecutionProvider", {}),), (1, 2, 4, 8), cuda_graphs=True)
    model = open_model(manifest, [plan], filler=classifier.encode([""]), replicas=2)
    assert isinstance(model, Replicas)
    ran_on = {replica.graph_thread: record_threads(replica, monkeypatch) for replica in model.replicas}
    with Classifier(manifest, model) as bound:
        gate = GatedScore(bound)
        monkeypatch.setattr(bound, "score", gate)
        with Service(bound, BatcherConfig(max_batch_size=8), name="replicas") as service:
            first = hold_first_batch(service, gate)
            gate.entered.clear()
            second = service.submit("second")
            assert gate.entered.wait(TIMEOUT)  # computing beside the first, not queued behind it
            gate.release.set()
            assert first.result(TIMEOUT).shape == second.result(TIMEOUT).shape == (6,)
            with ThreadPoolExecutor(8) as pool:
                futures = list(pool.map(service.submit, texts))
            for text, future in zip(texts, futures):
                np.testing.assert_allclose(future.result(TIMEOUT), alone[text], rtol=0, atol=1e-5)
    assert gate.calls[:2] == [1, 1]
    assert all(threads == {graph_thread} for graph_thread, threads in ran_on.items())


def test_service_does_not_close_its_classifier(classifier: Classifier) -> None:
    with Service(classifier):
        pass
    assert not classifier.closed


def test_texts_are_tokenized_a_batch_at_a_time_on_the_dispatcher(
    classifier: Classifier, gate: GatedScore, one_bucket: list[str], alone, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Callers only queue their texts: what arrives while the model is busy is cleaned and
    # tokenized in one call, on the dispatcher, as the batch it forms.
    encoded: list[tuple[str, int]] = []
    encode = classifier.encode
    monkeypatch.setattr(
        classifier, "encode", lambda t, **k: encoded.append((threading.current_thread().name, len(t))) or encode(t, **k)
    )
    with Service(classifier, BatcherConfig(max_batch_size=64), name="tokenizing") as service:
        first = hold_first_batch(service, gate)
        futures = [service.submit(text) for text in one_bucket]
        gate.release.set()
        rows = [future.result(TIMEOUT) for future in futures]
        first.result(TIMEOUT)
    assert encoded == [("tokenizing", 1), ("tokenizing", 20)]
    assert gate.calls == [1, 20]
    np.testing.assert_allclose(np.stack(rows), np.stack([alone[t] for t in one_bucket]), rtol=0, atol=ATOL)


@pytest.mark.parametrize(
    "per_bucket, asked, expected", [(True, None, True), (False, None, False), (True, False, False), (False, True, True)]
)
def test_where_the_model_runs_each_bucket_apart_a_batch_holds_one_bucket_oldest_first(
    classifier: Classifier, gate: GatedScore, texts: list[str], buckets: dict[str, int], alone,
    monkeypatch: pytest.MonkeyPatch, per_bucket: bool, asked: bool | None, expected: bool,
) -> None:
    # By default, on the CPU (per_bucket) the texts queued behind a held batch leave as one
    # batch per bucket, the oldest text's bucket first; where a batch runs once at its longest
    # text's bucket (a GPU), they leave as one batch. bucket_batches overrides either.
    assert classifier.runs_per_bucket  # the CPU, with the artifact's buckets
    mixed = texts[:30]
    assert len({buckets[t] for t in mixed}) > 1
    monkeypatch.setattr(Classifier, "runs_per_bucket", property(lambda self: per_bucket))
    with Service(classifier, bucket_batches=asked) as service:
        first = hold_first_batch(service, gate)
        futures = [service.submit(text) for text in mixed]
        gate.release.set()
        rows = np.stack([future.result(TIMEOUT) for future in futures])
        first.result(TIMEOUT)
    in_order = list(dict.fromkeys(buckets[t] for t in mixed))  # each bucket where its oldest text is
    batches = [sum(buckets[t] == bucket for t in mixed) for bucket in in_order] if expected else [30]
    assert gate.calls == [1, *batches]
    np.testing.assert_allclose(rows, np.stack([alone[t] for t in mixed]), rtol=0, atol=ATOL)


@pytest.mark.parametrize("asked, expected", [(None, False), (False, False), (True, True)])
def test_texts_are_tokenized_ahead_on_a_thread_of_their_own_only_off_the_cpu_or_when_asked(
    classifier: Classifier, gate: GatedScore, one_bucket: list[str], alone, monkeypatch: pytest.MonkeyPatch,
    asked: bool | None, expected: bool,
) -> None:
    encoded: list[tuple[str, int]] = []
    encode = classifier.encode
    monkeypatch.setattr(
        classifier, "encode", lambda t, **k: encoded.append((threading.current_thread().name, len(t))) or encode(t, **k)
    )
    with Service(classifier, name="ahead", tokenize_ahead=asked) as service:
        first = hold_first_batch(service, gate)
        futures = [service.submit(text) for text in one_bucket[:8]]
        if expected:  # all 8 tokenized while the first batch still runs
            wait_for(lambda: sum(n for _, n in encoded[1:]) == 8, "the queued texts to be tokenized ahead")
        gate.release.set()
        rows = np.stack([future.result(TIMEOUT) for future in futures])
        first.result(TIMEOUT)
    assert encoded[0] == ("ahead", 1)  # the lone first text: by the idle dispatcher
    assert {thread for thread, _ in encoded[1:]} == {"ahead-prepare" if expected else "ahead"}
    assert gate.calls == [1, 8]
    np.testing.assert_allclose(rows, np.stack([alone[t] for t in one_bucket[:8]]), rtol=0, atol=ATOL)


def test_score_async_queues_a_large_request_off_the_loop_and_times_it(
    classifier: Classifier, texts: list[str], alone, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued_on: list[str] = []

    async def both(service: Service):
        submit = service._batcher.submit
        monkeypatch.setattr(
            service._batcher, "submit", lambda *a, **k: queued_on.append(threading.current_thread().name) or submit(*a, **k)
        )
        return await service.score_async(texts[:2]), await service.score_async(texts[:40])

    with Service(classifier, name="scoring") as service:
        small, large = asyncio.run(both(service))
    assert set(queued_on[:2]) == {"MainThread"}
    assert len(queued_on) == 42 and all(name.startswith("scoring-queue") for name in queued_on[2:])
    for scored, some in ((small, texts[:2]), (large, texts[:40])):
        np.testing.assert_allclose(scored.probabilities, np.stack([alone[t] for t in some]), rtol=0, atol=ATOL)
        assert scored.queue_s >= 0 and scored.inference_s > 0 and scored.tokenization_s > 0


def test_a_cancelled_score_async_cancels_its_queued_texts(classifier: Classifier, gate: GatedScore) -> None:
    async def cancelled(service: Service) -> None:
        task = asyncio.ensure_future(service.score_async(["a", "b", "c"]))
        while service.queue_depth < 3:  # queued behind the held batch
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with Service(classifier) as service:
        first = hold_first_batch(service, gate)
        asyncio.run(cancelled(service))
        gate.release.set()
        first.result(TIMEOUT)
    assert gate.calls == [1]  # the three cancelled texts never reached the model


def test_score_async_fails_as_soon_as_one_batch_fails(classifier: Classifier) -> None:
    """The request's first batch fails while a later one is held: the await raises at once
    instead of waiting for the rest of the request (the hold only ends after it)."""
    real_score, calls, release = classifier.score, [], threading.Event()

    def score(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        calls.append(len(ids))
        if len(calls) == 1:
            raise RuntimeError("injected model failure")
        assert release.wait(TIMEOUT), "never released"
        return real_score(ids, mask)

    async def request(service: Service) -> None:
        with pytest.raises(RuntimeError, match="injected"):
            await asyncio.wait_for(service.score_async(["a", "b", "c", "d", "e", "f"]), TIMEOUT / 3)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(classifier, "score", score)
        with Service(classifier, BatcherConfig(max_batch_size=2)) as service:
            try:
                asyncio.run(request(service))
            finally:
                release.set()
    assert calls[0] == 2


# --- embeddings through the same queue ------------------------------------------------------


@pytest.fixture(scope="module")
def embedded_alone(classifier: Classifier, texts: list[str]) -> dict[str, np.ndarray]:
    """Each text's raw embedding, computed on its own: what the service must reproduce."""
    return {text: classifier.embed([text], normalize=False)[0] for text in texts}


@pytest.mark.parametrize("normalize", [True, False])
def test_embed_async_gives_each_text_its_own_embedding(
    classifier: Classifier, texts: list[str], embedded_alone, normalize: bool
) -> None:
    with Service(classifier, name="embedding") as service:
        embedded = asyncio.run(service.embed_async(texts[:40], normalize=normalize))
    expected = np.stack([embedded_alone[t] for t in texts[:40]])
    if normalize:
        expected = expected / np.linalg.norm(expected, axis=1, keepdims=True)
    assert embedded.embeddings.shape == (40, classifier.embedding_width) and embedded.embeddings.dtype == np.float32
    np.testing.assert_allclose(embedded.embeddings, expected, rtol=0, atol=ATOL)
    assert embedded.queue_s >= 0 and embedded.inference_s > 0


def test_one_batch_answers_scores_and_embeddings_each_to_whom_asked(
    classifier: Classifier, gate: GatedScore, one_bucket: list[str], alone, embedded_alone, monkeypatch
) -> None:
    """Requests of either kind share a batch: one model run, each text gets what it asked for."""
    runs: list[int] = []
    score_and_embed = classifier.score_and_embed
    monkeypatch.setattr(
        classifier, "score_and_embed", lambda ids, mask, **k: runs.append(len(ids)) or score_and_embed(ids, mask, **k)
    )

    async def both(service: Service):
        scoring = asyncio.ensure_future(service.score_async(one_bucket[:3]))
        embedding = asyncio.ensure_future(service.embed_async(one_bucket[3:5], normalize=False))
        while service.queue_depth < 5:  # both queued behind the held batch
            await asyncio.sleep(0)
        gate.release.set()
        return await scoring, await embedding

    with Service(classifier, BatcherConfig(max_batch_size=8)) as service:
        hold_first_batch(service, gate)
        scored, embedded = asyncio.run(both(service))
    assert gate.calls == [1] and runs == [5]  # the held batch scored; the mixed one ran once
    np.testing.assert_allclose(scored.probabilities, np.stack([alone[t] for t in one_bucket[:3]]), rtol=0, atol=ATOL)
    np.testing.assert_allclose(embedded.embeddings, np.stack([embedded_alone[t] for t in one_bucket[3:5]]), rtol=0, atol=ATOL)


def test_embed_async_on_an_old_artifact_queues_nothing(old_artifact: Path) -> None:
    with pytest.warns(UserWarning, match="random-weight"):
        old = Classifier.open(old_artifact, provider="cpu", variant="fp32")
    with old, Service(old) as service:
        with pytest.raises(ArtifactError, match="no pooled output"):
            asyncio.run(service.embed_async(["a", "b"]))
        assert service.queue_depth == 0
        assert asyncio.run(service.score_async(["a"])).probabilities.shape == (1, 6)


def test_embed_async_of_nothing_is_no_rows(classifier: Classifier) -> None:
    with Service(classifier) as service:
        embedded = asyncio.run(service.embed_async([]))
    assert embedded.embeddings.shape == (0, classifier.embedding_width)
