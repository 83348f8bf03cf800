"""`Classifier`: tweets in, the model card's probabilities out, as fast as the model runs.

Each batch goes: type check, `clean_tweet` (the card's cleaning), tokenization to
[n, sequence_length], the model, a sigmoid. With a graph whose sequence axis is symbolic
(fp32, int8, fused fp16), each batch runs at the smallest sequence bucket that holds its
longest text (`score` cuts the right padding beyond it; the mask makes that exact), so
short tweets stop paying for 32 positions. On a GPU that is opt-in (it measured slower on
an H200, where the host bounds the speed): a GPU model then binds buffers and a CUDA graph
per (batch, sequence) bucket. TensorRT's fixed [batch, 32] graph always runs at 32.

Bulk scoring (`predict`, `iter_predict`, `iter_batches`) runs the first three steps of the
next batches on one background thread (the tokenizer is shared) while the calling thread
runs the model on the current one; at most `_PREFETCH` batches are read ahead. With
buckets it reads the input in windows of `_WINDOW` texts, forms batches of texts of similar
length within each, and puts the scores back in input order; at most two windows are held
(the prefetch reads into the next while this one finishes), so memory stays bounded
however long the input. The calling thread also reads the input iterable, so a generator
never has to be thread-safe.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import chain, islice
from types import TracebackType
from typing import NamedTuple

import numpy as np
import onnxruntime as ort

from .checks import require_int
from .errors import ClosedError, InputError
from .manifest import Manifest
from .model import Model, open_model
from .preprocess import clean_tweet
from .providers import plan_sessions
from .tokenizer import SharedTokenizer

__all__ = ["Classifier", "ScoredBatch", "sigmoid"]

_PREFETCH = 2
_WINDOW = 4096  # texts grouped by length at a time: bounds memory and the first result's delay
_DEFAULT_THRESHOLD = 0.5

_Thresholds = Mapping[str, float] | float | None


class ScoredBatch(NamedTuple):
    """One batch of `Classifier.iter_batches`: where it starts in the input, and its scores.

    Attributes:
        start: Index, in the whole input, of the batch's first text.
        probabilities: float32 [batch length, n_labels].
    """

    start: int
    probabilities: np.ndarray


def sigmoid(logits: np.ndarray, dtype: type[np.floating] = np.float32) -> np.ndarray:
    """Logistic function that only exponentiates non-positive numbers, so never overflows.

    It computes in the precision of LOGITS and returns DTYPE: export's validation passes
    float64 logits and asks for float64, to measure differences far below float32's.
    """
    small = np.exp(-np.abs(logits))
    return np.where(logits >= 0, 1.0 / (1.0 + small), small / (1.0 + small)).astype(dtype, copy=False)


class Classifier:
    """Scores tweets with one artifact on one execution provider.

    Build it with `Classifier.open`; the constructor takes an already opened `Model`.
    Thread-safe: `predict`, `encode` and `score` may run on several threads at once.
    Use it as a context manager or call `close()`.

    Attributes:
        labels: Label names, in manifest (and column) order.
        thresholds: float32 [n_labels], the per-label decision thresholds (`>=`).
        provider: The ONNX Runtime provider that runs the model, e.g. "CPUExecutionProvider".
        variant: The manifest variant in use.
        random_weights: True for a random stand-in, whose scores mean nothing.
        clean: Whether texts go through the card's `clean_tweet` first.
        sequence_buckets: The lengths batches run at; empty when every batch runs at
            sequence_length (an artifact without buckets, or a graph with a fixed axis).
    """

    def __init__(
        self,
        manifest: Manifest,
        model: Model,
        *,
        tokenizer: SharedTokenizer | None = None,
        thresholds: _Thresholds = None,
        clean: bool = True,
    ) -> None:
        self.manifest = manifest
        self.labels: tuple[str, ...] = manifest.labels
        self.thresholds = _resolve_thresholds(manifest, thresholds)
        self.provider = model.plan.provider
        self.variant = model.plan.variant
        self.random_weights = manifest.random_weights
        self.clean = clean
        self._model: Model | None = model
        self._tokenizer = tokenizer or _tokenizer_for(manifest)
        self.sequence_buckets = model.sequence_buckets
        self._prefetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-prefetch")

    @classmethod
    def open(
        cls,
        artifact: str | os.PathLike[str],
        *,
        provider: str = "auto",
        variant: str | None = None,
        thresholds: _Thresholds = None,
        threads: int | None = None,
        max_batch_size: int = 256,
        cache_dir: str | os.PathLike[str] | None = None,
        clean: bool = True,
        spin: bool = True,
        sequence_buckets: bool | None = None,
    ) -> Classifier:
        """Open the artifact directory ARTIFACT on the best (or the requested) provider.

        Args:
            artifact: Directory written by `vigil export`.
            provider: "auto" (TensorRT, then CUDA, then CPU, as available), or "tensorrt",
                "cuda" or "cpu" to insist.
            variant: A manifest variant, or None for the provider's natural one ("fp16" on
                TensorRT, "fp16-fused" on CUDA, "int8" on the CPU).
            thresholds: Per-label (mapping) or global (float) decision thresholds over the
                manifest's; labels without any default to 0.5.
            threads: Intra-op threads; None means one per physical core on the CPU, one on a GPU.
            max_batch_size: Largest batch a GPU session is built for.
            cache_dir: TensorRT engine cache; see `plan_sessions`.
            clean: Apply the card's `clean_tweet` before tokenizing.
            spin: Let idle intra-op threads spin-wait between runs: best for bulk scoring;
                servers pass False so that idle threads leave the cores to request threads.
            sequence_buckets: Run each batch at the smallest of the manifest's sequence
                buckets that holds it. None (the default): on the CPU, where it is faster,
                but not on a GPU, where the host bounds the speed and it measured slower
                (README, "Sequence buckets"); True binds a CUDA graph per bucket as well.

        Raises:
            ArtifactError: The artifact is missing, malformed or corrupt (sha256).
            ProviderError: The requested provider or variant cannot run here.
        """
        manifest = Manifest.load(artifact)
        _resolve_thresholds(manifest, thresholds)  # fail before a possibly slow session build
        available = ort.get_available_providers()
        plans = plan_sessions(
            manifest, provider, variant, available, max_batch_size=max_batch_size, cache_dir=cache_dir
        )
        tokenizer = _tokenizer_for(manifest)
        model = open_model(
            manifest, plans, filler=tokenizer.encode([""]), threads=threads, spin=spin, sequence_buckets=sequence_buckets
        )
        if manifest.random_weights:
            warnings.warn(
                f"{manifest.directory} holds a random-weight stand-in, not the real model: "
                "its scores mean nothing",
                stacklevel=2,
            )
        return cls(manifest, model, tokenizer=tokenizer, thresholds=thresholds, clean=clean)

    @property
    def model(self) -> Model:
        """The opened model; ClosedError once the classifier is closed."""
        if self._model is None:
            raise ClosedError("this Classifier is closed")
        return self._model

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._model is None

    def predict(
        self,
        texts: Iterable[str],
        *,
        batch_size: int = 64,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Probabilities, float32 [n, n_labels], for any iterable of texts.

        Args:
            texts: A list, or any iterable (a generator of unknown length is fine).
            batch_size: Texts per model run.
            progress: Called after each batch with the number of texts it finished (an
                increment, so `tqdm.update` fits).

        Raises:
            InputError: An item is not a str; the message names its index and type.
        """
        parts = []
        for part in self.iter_predict(texts, batch_size=batch_size):
            parts.append(part)
            if progress is not None:
                progress(len(part))
        return np.concatenate(parts) if parts else np.empty((0, len(self.labels)), dtype=np.float32)

    def iter_predict(self, texts: Iterable[str], *, batch_size: int = 64) -> Iterator[np.ndarray]:
        """Probabilities one batch at a time, in input order, in bounded memory.

        Raises:
            InputError: When the batch holding a non-str item is reached.
        """
        return (batch.probabilities for batch in self.iter_batches(texts, batch_size=batch_size))

    def iter_batches(self, texts: Iterable[str], *, batch_size: int = 64) -> Iterator[ScoredBatch]:
        """Like `iter_predict`, with each batch's start index in TEXTS.

        A caller that pairs texts with other data (the rows they came from) looks its rows up
        by `start` rather than trusting that it counted along in step.

        Raises:
            InputError: When the window holding a non-str item is reached.
        """
        require_int("batch_size", batch_size, 1)
        if isinstance(texts, str):
            raise TypeError("texts must be an iterable of str, got one str; wrap it in a list")
        if self.closed:  # raise now, not at the first next()
            raise ClosedError("this Classifier is closed")
        return self._scored_batches(iter(texts), batch_size)

    def _scored_batches(self, texts: Iterator[str], batch_size: int) -> Iterator[ScoredBatch]:
        if not self.sequence_buckets:
            yield from self._pipelined(_batches(texts, batch_size))
            return
        windows: deque[_Window] = deque()
        for batch in self._pipelined(self._by_length(texts, batch_size, windows)):
            window = windows[0]  # batches come back in order: this one is from the oldest window
            if window.fill(batch):
                windows.popleft()
                yield from window.batches(batch_size)

    def _by_length(self, texts: Iterator[str], batch_size: int, windows: deque[_Window]) -> Iterator[tuple[int, list[str]]]:
        """Batches of texts of similar length, a window of the input at a time.

        Each window is appended to WINDOWS as it is read, for the caller to put its scores
        back in input order. Characters stand in for tokens when grouping (the bucket itself
        comes from the tokens), so grouping needs no tokenization, and one prefetch pipeline
        runs through every window: tokenizing the next batch overlaps the model on this
        one, across window boundaries too.
        """
        for start, window in _batches(texts, _window_size(batch_size)):
            self._check_types(window, start)  # indices of the input, before any reordering
            order = sorted(range(len(window)), key=lambda i: len(window[i]))
            windows.append(_Window(start, np.array(order), np.empty((len(window), len(self.labels)), np.float32)))
            grouped = [window[i] for i in order]
            yield from ((start + i, grouped[i : i + batch_size]) for i in range(0, len(grouped), batch_size))

    def _pipelined(self, batches: Iterator[tuple[int, list[str]]]) -> Iterator[ScoredBatch]:
        """Score BATCHES in order while the next ones are encoded on the prefetch thread."""
        first, second = next(batches, None), next(batches, None)
        if first is None:
            return
        if second is None:  # a single batch (batch-1 latency): nothing to overlap with
            yield ScoredBatch(first[0], self.score(*self.encode(first[1], start=first[0])))
            return
        pending: deque[tuple[int, Future[tuple[np.ndarray, np.ndarray]]]] = deque()
        try:
            for start, batch in chain((first, second), batches):
                pending.append((start, self._prefetcher.submit(self.encode, batch, start=start)))
                if len(pending) > _PREFETCH:
                    yield self._score_pending(pending.popleft())
            while pending:
                yield self._score_pending(pending.popleft())
        finally:
            for _, future in pending:  # the consumer stopped early: skip what is still queued
                future.cancel()

    def _score_pending(self, pending: tuple[int, Future[tuple[np.ndarray, np.ndarray]]]) -> ScoredBatch:
        start, encoded = pending
        return ScoredBatch(start, self.score(*encoded.result()))

    def encode(self, texts: Sequence[str], *, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Check, clean and tokenize TEXTS (on any thread: the tokenizer is shared).

        Args:
            start: Index of `texts[0]` in the caller's whole input, for error messages.

        Returns:
            int64 token ids and attention mask, each [len(texts), sequence_length].
        """
        self._check_types(texts, start)
        if self.clean:
            texts = [clean_tweet(text) for text in texts]
        return self._tokenizer.encode(texts)

    @staticmethod
    def _check_types(texts: Sequence[str], start: int) -> None:
        if not all(isinstance(text, str) for text in texts):
            index, item = next((i, t) for i, t in enumerate(texts) if not isinstance(t, str))
            raise InputError(f"text {start + index} is {type(item).__name__}, not str")

    def score(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Probabilities, float32 [n, n_labels], for encoded texts (see `encode`).

        With sequence buckets the batch runs at the smallest that holds its longest row.
        """
        return sigmoid(self.model.run(*self._fit(ids, mask)))

    def _fit(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """IDS and MASK cut to their sequence bucket: only right padding is cut."""
        if not self.sequence_buckets or not len(mask):
            return ids, mask
        longest = mask.shape[1] - int(np.argmax(mask[:, ::-1].any(axis=0)))
        width = next((w for w in self.sequence_buckets if w >= longest), mask.shape[1])
        if width >= mask.shape[1]:
            return ids, mask
        return np.ascontiguousarray(ids[:, :width]), np.ascontiguousarray(mask[:, :width])

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        """Label decisions, bool [n, n_labels]: probability >= that label's threshold."""
        return self._check_rows(probabilities) >= self.thresholds

    def pipeline_output(self, probabilities: np.ndarray) -> list[list[dict[str, object]]]:
        """What transformers' text-classification pipeline with `top_k=None` returns.

        Per text, {"label", "score"} for every label, highest score first; equal scores
        keep label order, as the pipeline's stable sort does.
        """
        probabilities = self._check_rows(probabilities)
        order = np.argsort(-probabilities, axis=1, kind="stable")
        labels = self.labels
        return [
            [{"label": labels[j], "score": float(row[j])} for j in row_order]
            for row, row_order in zip(probabilities, order)
        ]

    def close(self) -> None:
        """Stop the prefetch thread and release the session; safe to call twice."""
        model, self._model = self._model, None
        self._prefetcher.shutdown(wait=True, cancel_futures=True)
        if model is not None:
            model.close()

    def __enter__(self) -> Classifier:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _check_rows(self, probabilities: np.ndarray) -> np.ndarray:
        probabilities = np.asarray(probabilities)
        if probabilities.ndim != 2 or probabilities.shape[1] != len(self.labels):
            raise ValueError(
                f"probabilities must have shape [n, {len(self.labels)}], got {probabilities.shape}"
            )
        return probabilities


class _Window:
    """One window of the input being scored out of order: where its scores go back."""

    def __init__(self, start: int, order: np.ndarray, scores: np.ndarray) -> None:
        self.start = start
        self.order = order  # order[k]: the window index of the k-th text scored
        self.scores = scores  # in input order
        self._missing = len(order)

    def fill(self, batch: ScoredBatch) -> bool:
        """Put BATCH's rows back in input order; whether the window is now complete."""
        offset = batch.start - self.start
        self.scores[self.order[offset : offset + len(batch.probabilities)]] = batch.probabilities
        self._missing -= len(batch.probabilities)
        return self._missing == 0

    def batches(self, batch_size: int) -> Iterator[ScoredBatch]:
        return (ScoredBatch(self.start + i, self.scores[i : i + batch_size]) for i in range(0, len(self.order), batch_size))


def _resolve_thresholds(manifest: Manifest, overrides: _Thresholds = None) -> np.ndarray:
    """float32 thresholds in label order: OVERRIDES over the manifest's over 0.5.

    Raises:
        TypeError: OVERRIDES is neither a mapping nor a number, or holds a non-number.
        InputError: A threshold is outside [0, 1], or names a label the artifact lacks.
    """
    values = {label: manifest.thresholds.get(label, _DEFAULT_THRESHOLD) for label in manifest.labels}
    if isinstance(overrides, Mapping):
        unknown = sorted(set(overrides) - set(values), key=str)
        if unknown:
            raise InputError(f"thresholds name unknown labels {unknown}; labels are {list(manifest.labels)}")
        values.update(overrides)
    elif overrides is not None:
        values = dict.fromkeys(values, overrides)
    return np.array([_probability(label, value) for label, value in values.items()], dtype=np.float32)


def _probability(label: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"threshold for {label!r} must be a number, got {value!r}")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise InputError(f"threshold for {label!r} must be within [0, 1], got {value!r}")
    return float(value)


def _tokenizer_for(manifest: Manifest) -> SharedTokenizer:
    return SharedTokenizer(manifest.verified_tokenizer_path(), manifest.sequence_length, manifest.pad_id)


def _window_size(batch_size: int) -> int:
    """Texts read and grouped by length at a time, with buckets: whole batches of BATCH_SIZE."""
    return batch_size * max(1, _WINDOW // batch_size)


def _batches(texts: Iterator[str], size: int) -> Iterator[tuple[int, list[str]]]:
    """(index of the first item, items) for consecutive slices of SIZE items."""
    start = 0
    while batch := list(islice(texts, size)):
        yield start, batch
        start += len(batch)
