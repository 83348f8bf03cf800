"""`Service`: a `Classifier` behind the dynamic `Batcher`, for servers.

Callers on any thread, or on an event loop, submit one text each. The text's type is
checked at once on the caller's thread, so a bad request fails before it is queued; the
text itself is queued as it is. The batcher's dispatcher thread (one per model replica,
`Classifier.open(replicas=...)`, so that each keeps one batch in flight) then cleans and
tokenizes each batch in one call (its `prepare` stage) and runs the model on it, and each
future gets its own row; where the model computes off the host, a preparer thread already
tokenizes what queues while the model runs (`tokenize_ahead`). Tokenizing a batch at once
costs a fraction of tokenizing its texts one by one on their callers' threads (measured on
2 cores: 28 us a text in a batch of 64, against 47 us each from 16 threads), and it keeps that work off an event loop. A lone request
pays the same: its one text is tokenized on the dispatcher instead of on its caller.
On a GPU the model pads a batch up to its bucket with real rows and slices the result. The
CPU runs each sequence bucket of a batch apart (see `Classifier.score`), so there a batch holds
texts of one bucket (the Batcher's `group`): the dispatcher runs the oldest text's bucket with
everything queued for it, and the rest waits at the head of the queue for the next run, which
texts arriving meanwhile can join.

A request of many texts (`score_async`) is queued in a worker thread when it is large,
so that an event loop keeps serving meanwhile, and all its texts are queued at once, so they
share batches with each other and with other requests'.

Sentence embeddings (`embed_async`) take the same queue and batches: a batch where any text
asks for its embedding runs the model once for both outputs, and each text gets what it
asked for; a batch of classification only never copies the embeddings.

The service never blocks on CUDA graph capture: the model captured its graphs when it was
opened, on the one thread that runs all its GPU work (see `BoundModel`).
"""

from __future__ import annotations

import asyncio
import threading
from bisect import bisect_left
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import NamedTuple

import numpy as np

from .batcher import Batcher, BatcherConfig, BatchRecord, Timed
from .checks import require_texts
from .engine import Classifier, l2_normalize
from .errors import InputError

__all__ = ["Embedded", "Scored", "Service"]
# Requests with more texts than this are queued in a worker thread, off the event loop:
# a thread hop (~50 us) is worth it once queueing (~10 us a text) costs a few of them.
_QUEUE_INLINE_MAX = 16


@dataclass(frozen=True)
class Scored:
    """What `Service.score_async` answers: the rows, and what they waited and cost.

    Attributes:
        probabilities: float32 [n_texts, n_labels], in request order.
        queue_s: The longest any of its texts waited for its batch to be dispatched.
        inference_s: The longest model run any of its texts was in.
        tokenization_s: The longest cleaning and tokenizing call any of its texts was in.
    """

    probabilities: np.ndarray
    queue_s: float
    inference_s: float
    tokenization_s: float


@dataclass(frozen=True)
class Embedded:
    """What `Service.embed_async` answers: `embeddings`, float32 [n_texts, embedding_width] in
    request order, and what they waited and cost (`queue_s`, `inference_s`, `tokenization_s`,
    as in `Scored`)."""

    embeddings: np.ndarray
    queue_s: float
    inference_s: float
    tokenization_s: float


class _Text(NamedTuple):
    """One queued text, as submitted, and whether it wants its embedding."""

    text: str
    embed: bool = False


class _Row(NamedTuple):
    """One text tokenized by the `prepare` stage: its token ids, its attention mask, whether
    it wants its embedding, and its real (unpadded) tokens."""

    ids: np.ndarray
    mask: np.ndarray
    embed: bool
    tokens: int


class Service:
    """Scores single texts from many callers in dynamic batches.

    Args:
        classifier: Runs the model; the service does not close it.
        config: Batch size, batch wait, queue size and default submit timeout.
        observer: Called with a `BatchRecord` after every batch (see `Batcher`).
        name: Name of the dispatcher thread (further replicas' dispatchers: NAME-2, ...).
        tokenize_ahead: Tokenize what queues while the model runs, on a thread of its own
            (the Batcher's `prepare_ahead`); None (the default) does so where the model
            computes off the host (CUDA, TensorRT), not on the CPU, whose cores the model
            already uses.
        bucket_batches: Form each batch from texts of one sequence bucket (the Batcher's
            `group`); None (the default) does so where the model runs each bucket of a batch
            apart anyway (the CPU). README, "Batching policy", gives what it measured.

    Use it as a context manager, or call `close()`.
    """

    def __init__(
        self,
        classifier: Classifier,
        config: BatcherConfig = BatcherConfig(),
        *,
        observer: Callable[[BatchRecord], None] | None = None,
        name: str = "vigil-service",
        tokenize_ahead: bool | None = None,
        bucket_batches: bool | None = None,
    ) -> None:
        self._classifier = classifier
        self._config = config
        self._queuer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-queue")
        if tokenize_ahead is None:
            tokenize_ahead = classifier.provider != "CPUExecutionProvider"
        if bucket_batches is None:
            bucket_batches = classifier.runs_per_bucket
        self._batcher = Batcher(
            self._process, config, observer=observer, name=name, prepare=self._tokenized,
            prepare_ahead=tokenize_ahead, weigh=_tokens, dispatchers=classifier.concurrency,
            group=self._bucket if bucket_batches and classifier.sequence_buckets else None,
        )

    @property
    def queue_depth(self) -> int:
        """Requests accepted but not yet dispatched, for metrics."""
        return self._batcher.queue_depth

    def submit(self, text: str, *, timeout: float | None = None) -> Future[np.ndarray]:
        """Queue TEXT; the future resolves with its probabilities, float32 [n_labels].

        Args:
            timeout: Seconds to wait for room in a full queue; None means the config's.

        Raises:
            InputError: TEXT is not a str (raised here; nothing is queued).
            OverloadedError: The queue stayed full for the whole timeout.
            BatcherClosedError: The service is closed.
        """
        return self._batcher.submit(_Text(_checked(text)), timeout=timeout)

    async def submit_async(self, text: str, *, timeout: float | None = None) -> np.ndarray:
        """Queue TEXT and await its probabilities; cancelling the await cancels the request.

        Raises:
            InputError, OverloadedError, BatcherClosedError: As `submit`.
        """
        return await self._batcher.submit_async(_Text(_checked(text)), timeout=timeout)

    async def score_async(self, texts: Sequence[str], *, timeout: float | None = None) -> Scored:
        """Queue every text of TEXTS at once and await all their rows, with their timings.

        More than a few texts, or a wait for room in a full queue, are checked and queued
        in a worker thread, so that the event loop keeps serving meanwhile. If
        the await is cancelled, or one text fails, the unfinished texts are cancelled:
        still queued, they never reach the model.

        Raises:
            InputError: An item is not a str; the message names its index (nothing is queued).
            OverloadedError, BatcherClosedError: As `submit`; texts already queued are cancelled.
        """
        return Scored(*await self._gather(texts, timeout, embed=False, width=len(self._classifier.labels)))

    async def embed_async(self, texts: Sequence[str], *, normalize: bool = True, timeout: float | None = None) -> Embedded:
        """Queue every text of TEXTS at once and await their sentence embeddings, as `score_async`.

        Args:
            normalize: L2-normalise them (the documented sentence embedding); False gives
                the raw pooler output.

        Raises:
            ArtifactError: The artifact has no pooled output (nothing is queued).
            InputError, OverloadedError, BatcherClosedError: As `score_async`.
        """
        width = self._classifier.embedding_width
        rows, *timings = await self._gather(texts, timeout, embed=True, width=width)
        return Embedded(l2_normalize(rows) if normalize else rows, *timings)

    async def _gather(
        self, texts: Sequence[str], timeout: float | None, *, embed: bool, width: int
    ) -> tuple[np.ndarray, float, float, float]:
        """Queue TEXTS and await their rows [n, WIDTH], and the longest queue wait, model run
        and tokenizing call among them."""
        if not texts:
            return np.empty((0, width), dtype=np.float32), 0.0, 0.0, 0.0
        wait_s = self._config.submit_timeout_s if timeout is None else timeout
        if len(texts) <= _QUEUE_INLINE_MAX and wait_s == 0:
            futures = self._queue_all(texts, timeout, embed)
        else:
            queued = self._queuer.submit(self._queue_all, texts, timeout, embed)
            try:
                futures = await asyncio.wrap_future(queued)
            except asyncio.CancelledError:  # the worker may still be queueing: undo it after
                queued.add_done_callback(_cancel_when_queued)
                raise
        try:
            await _all_done(futures)
            answers = _answers(futures)
        finally:
            _cancel_all(futures)  # a no-op for answered ones
        return (
            np.stack([a.result for a in answers]),
            max(a.queue_s for a in answers),
            max(a.compute_s for a in answers),
            max(a.prepare_s for a in answers),
        )

    def close(self, wait: bool = True, *, cancel_pending: bool = False) -> None:
        """Stop accepting texts; answer the queued ones unless CANCEL_PENDING. Idempotent."""
        self._batcher.close(wait, cancel_pending=cancel_pending)
        self._queuer.shutdown(wait=wait)

    def __enter__(self) -> Service:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _queue_all(
        self, texts: Sequence[str], timeout: float | None, embed: bool = False
    ) -> list[Future[Timed[np.ndarray]]]:
        """Check TEXTS and queue each, timed; on a failure cancel those already queued."""
        require_texts(texts)
        futures: list[Future[Timed[np.ndarray]]] = []
        try:
            for text in texts:
                futures.append(self._batcher.submit(_Text(text, embed), timeout=timeout, timed=True))  # type: ignore[arg-type]
        except BaseException:
            _cancel_all(futures)
            raise
        return futures

    def _tokenized(self, texts: list[_Text]) -> list[_Row]:
        """The `prepare` stage: clean and tokenize many texts in one call."""
        ids, mask = self._classifier.encode([t.text for t in texts])
        tokens = mask.sum(axis=1).tolist()  # counted once per call, not per row on the dispatcher
        return [_Row(*row, t.embed, n) for row, t, n in zip(zip(ids, mask), texts, tokens)]

    def _bucket(self, row: _Row) -> int:
        """The sequence bucket ROW runs at: where the model runs each bucket apart, a batch
        holds one (the Batcher's `group`)."""
        return bisect_left(self._classifier.sequence_buckets, row.tokens)

    def _process(self, rows: list[_Row]) -> Sequence[np.ndarray]:
        """The dispatcher's batch: stack the rows, run the model once; each row gets its
        probabilities, or its raw embedding where it asked for one."""
        ids = np.stack([row.ids for row in rows])
        mask = np.stack([row.mask for row in rows])
        if not any(row.embed for row in rows):
            return self._classifier.score(ids, mask)
        probabilities, pooled = self._classifier.score_and_embed(ids, mask, normalize=False)
        return [embedding if row.embed else scores for row, scores, embedding in zip(rows, probabilities, pooled)]


def _checked(text: object) -> str:
    if not isinstance(text, str):
        raise InputError(f"submitted text is {type(text).__name__}, not str")
    return text


def _all_done(futures: Sequence[Future[Timed[np.ndarray]]]) -> asyncio.Future[None]:
    """An asyncio future that settles when every one of FUTURES is done, or one fails.

    One wake-up of the event loop for the whole request: wrapping each of hundreds of
    futures for `asyncio.gather` costs the loop tens of milliseconds of callbacks.
    """
    loop = asyncio.get_running_loop()
    settled = loop.create_future()
    remaining = [len(futures)]
    lock = threading.Lock()

    def settle() -> None:
        if not settled.done():
            settled.set_result(None)

    def one_done(future: Future[Timed[np.ndarray]]) -> None:
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last or future.cancelled() or future.exception() is not None:
            loop.call_soon_threadsafe(settle)

    for future in futures:
        future.add_done_callback(one_done)
    return settled


def _answers(futures: Sequence[Future[Timed[np.ndarray]]]) -> list[Timed[np.ndarray]]:
    """The answers of FUTURES once `_all_done` settled: all done, or one failed (raised here,
    as asyncio.CancelledError where it was cancelled), never a wait on a pending one."""
    for future in futures:
        if future.cancelled():
            raise asyncio.CancelledError
        if future.done() and future.exception() is not None:
            raise future.exception()  # type: ignore[misc]
    return [future.result() for future in futures]


def _cancel_all(futures: Sequence[Future[Timed[np.ndarray]]]) -> None:
    for future in futures:
        future.cancel()


def _cancel_when_queued(queued: Future[list[Future[Timed[np.ndarray]]]]) -> None:
    """Done callback for a worker's queueing whose awaiter was cancelled: cancel its texts."""
    if not queued.cancelled() and queued.exception() is None:
        _cancel_all(queued.result())


def _tokens(rows: list[_Row]) -> int:
    """Real (unpadded) tokens in a batch: what the batch-tokens histogram counts."""
    return sum(row.tokens for row in rows)
