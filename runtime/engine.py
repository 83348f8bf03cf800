"""`Classifier`: tweets in, the model card's probabilities out, as fast as the model runs.

Each batch goes: type check, `clean_tweet` (the card's cleaning), tokenization to
[n, sequence_length], the model, a sigmoid. With a graph whose sequence axis is symbolic
(fp32, int8, fused fp16), each text runs at the smallest sequence bucket that holds it
(`score` cuts the right padding beyond it; the mask makes that exact; on the CPU a batch of
mixed lengths runs once per bucket), so short tweets stop paying for 32 positions. On a
GPU buckets are opt-in, and a batch runs at its longest text's bucket (it measured slower on
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

Sentence embeddings come from the same pass (`embed`, `predict(..., embeddings=True)`):
smaller-LaBSE's documented sentence embedding is the BERT pooler output, L2-normalised,
which the head reads and the graph returns beside the logits. Classification fetches only
the logits; the embeddings travel through the same pipeline, windows and input-order
restoration as the scores, and are copied off a GPU only when asked for.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from itertools import chain, islice
from types import TracebackType
from typing import NamedTuple

import numpy as np
import onnxruntime as ort

from .checks import require_int, require_texts
from .errors import ArtifactError, ClosedError, InputError
from .manifest import Manifest
from .model import Model, open_model
from .preprocess import clean_tweet
from .providers import plan_sessions
from .tokenizer import SharedTokenizer

__all__ = ["Classifier", "EmbeddedBatch", "Predictions", "ScoredBatch", "l2_normalize", "sigmoid"]

_PREFETCH = 2
_WINDOW = 4096  # texts grouped by length at a time: bounds memory and the first result's delay
_DEFAULT_THRESHOLD = 0.5

_Thresholds = Mapping[str, float] | float | None
# What one model run gives a batch: (probabilities,), or (probabilities, embeddings).
_Outputs = tuple[np.ndarray, ...]
_Run = Callable[[np.ndarray, np.ndarray], _Outputs]


class ScoredBatch(NamedTuple):
    """One batch of `Classifier.iter_batches`: where it starts in the input, and its scores.

    Attributes:
        start: Index, in the whole input, of the batch's first text.
        probabilities: float32 [batch length, n_labels].
    """

    start: int
    probabilities: np.ndarray


class EmbeddedBatch(NamedTuple):
    """One batch of `Classifier.iter_batches(..., embeddings=True)`: scores and embeddings.

    Attributes:
        start: Index, in the whole input, of the batch's first text.
        probabilities: float32 [batch length, n_labels].
        embeddings: float32 [batch length, embedding_width], from the same model run.
    """

    start: int
    probabilities: np.ndarray
    embeddings: np.ndarray


class Predictions(NamedTuple):
    """What `Classifier.predict(..., embeddings=True)` returns, both in input order.

    Attributes:
        probabilities: float32 [n, n_labels].
        embeddings: float32 [n, embedding_width].
    """

    probabilities: np.ndarray
    embeddings: np.ndarray


def l2_normalize(rows: np.ndarray) -> np.ndarray:
    """ROWS scaled to unit length, float32: the pooler output as a sentence embedding.

    A zero row (never a pooler output, whose tanh rarely gives exact zeros) stays zero
    instead of turning into NaN.
    """
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / np.maximum(norms, np.finfo(np.float32).tiny)).astype(np.float32, copy=False)


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
        embeddings: bool = False,
        replicas: int = 1,
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
            spin: Let intra-op threads spin-wait between runs too: best for bulk scoring;
                servers pass False so that idle threads leave the cores to request threads
                (they still spin within a run).
            sequence_buckets: Run each batch at the smallest of the manifest's sequence
                buckets that holds it. None (the default): on the CPU, where it is faster,
                but not on a GPU, where the host bounds the speed and it measured slower
                (README, "Sequence buckets"); True binds a CUDA graph per bucket as well.
            embeddings: You will embed: where VARIANT is None, pass over a variant whose
                embeddings missed their tolerance at export (int8 on the CPU then runs
                fp32; see `embedding_problem`).
            replicas: Sessions of the model, each running one batch at a time, so that a
                `Service` keeps that many batches in flight (`Replicas`). For a GPU, where
                one batch computes while the host feeds another. THREADS is per replica,
                and defaults to one for each of several.

        Raises:
            ArtifactError: The artifact is missing, malformed or corrupt (sha256).
            ProviderError: The requested provider or variant cannot run here.
        """
        manifest = Manifest.load(artifact)
        _resolve_thresholds(manifest, thresholds)  # fail before a possibly slow session build
        available = ort.get_available_providers()
        plans = plan_sessions(
            manifest, provider, variant, available, max_batch_size=max_batch_size, cache_dir=cache_dir,
            embeddings=embeddings,
        )
        tokenizer = _tokenizer_for(manifest)
        model = open_model(
            manifest, plans, filler=tokenizer.encode([""]), threads=threads, spin=spin,
            sequence_buckets=sequence_buckets, replicas=replicas,
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

    @property
    def concurrency(self) -> int:
        """Batches the model runs at once: its replicas (`open(..., replicas=)`)."""
        return self.model.concurrency

    @property
    def runs_per_bucket(self) -> bool:
        """Whether a batch of mixed lengths runs once per sequence bucket (the CPU; see
        `score`), so that a server does best to batch texts of one bucket together."""
        return bool(self.sequence_buckets) and self.model.run_per_bucket

    @property
    def embedding_width(self) -> int:
        """Width of the sentence embeddings: the model's hidden size (768 for smaller-LaBSE).

        Raises:
            ArtifactError: This classifier cannot embed; the message says why and what to do
                (see `embedding_problem`). Its scores are unaffected.
        """
        return self._require_embeddings()

    @property
    def embedding_problem(self) -> str | None:
        """Why this classifier cannot embed, or None when it can.

        An artifact exported before vigil computed embeddings has no pooled output; a
        variant whose embeddings missed their tolerance at export (int8, whose scores pass
        theirs) is not trusted with them.
        """
        if self.manifest.pooled_width is None:
            return (
                "the artifact has no pooled output: it was exported before vigil computed embeddings; "
                "re-export it with `vigil export` (scoring still works)"
            )
        figures = self.manifest.variant(self.variant).pooled_validation
        if not figures.get("passed", False):
            return (
                f"variant {self.variant!r} missed its embeddings' tolerance at export (min cosine "
                f"{figures.get('min_cosine', float('nan')):.4f} with PyTorch's pooler output, "
                f"{figures.get('tolerance', {}).get('min_cosine', float('nan')):g} required); embed with variant 'fp32'"
            )
        return None

    def _require_embeddings(self) -> int:
        """The embedding width, or the error that names the artifact, the problem and the remedy."""
        problem, width = self.embedding_problem, self.manifest.pooled_width
        if problem is not None or width is None:
            raise ArtifactError(f"cannot embed with {self.manifest.directory}: {problem}")
        return width

    def predict(
        self,
        texts: Iterable[str],
        *,
        batch_size: int = 64,
        progress: Callable[[int], None] | None = None,
        embeddings: bool = False,
        normalize: bool = True,
    ) -> np.ndarray | Predictions:
        """Probabilities, float32 [n, n_labels], for any iterable of texts.

        Args:
            texts: A list, or any iterable (a generator of unknown length is fine).
            batch_size: Texts per model run.
            progress: Called after each batch with the number of texts it finished (an
                increment, so `tqdm.update` fits).
            embeddings: Return `Predictions`: the probabilities and the sentence embeddings,
                float32 [n, embedding_width], from the same model runs.
            normalize: L2-normalise the embeddings (the documented sentence embedding);
                False gives the raw pooler output.

        Raises:
            InputError: An item is not a str; the message names its index and type.
            ArtifactError: EMBEDDINGS with an artifact that has no pooled output.
        """
        batches = self.iter_batches(texts, batch_size=batch_size, embeddings=embeddings, normalize=normalize)
        parts = []
        for batch in batches:
            parts.append(batch)
            if progress is not None:
                progress(len(batch.probabilities))
        probabilities = _stacked([part.probabilities for part in parts], len(self.labels))
        if not embeddings:
            return probabilities
        return Predictions(probabilities, _stacked([part.embeddings for part in parts], self.embedding_width))

    def embed(
        self,
        texts: Iterable[str],
        *,
        batch_size: int = 64,
        normalize: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Sentence embeddings, float32 [n, embedding_width], in input order (see `predict`).

        Raises:
            InputError: An item is not a str; the message names its index and type.
            ArtifactError: The artifact has no pooled output (see `embedding_width`).
        """
        predicted = self.predict(texts, batch_size=batch_size, progress=progress, embeddings=True, normalize=normalize)
        return predicted.embeddings

    def iter_predict(self, texts: Iterable[str], *, batch_size: int = 64) -> Iterator[np.ndarray]:
        """Probabilities one batch at a time, in input order, in bounded memory.

        Raises:
            InputError: When the batch holding a non-str item is reached.
        """
        return (batch.probabilities for batch in self.iter_batches(texts, batch_size=batch_size))

    def iter_batches(
        self, texts: Iterable[str], *, batch_size: int = 64, embeddings: bool = False, normalize: bool = True
    ) -> Iterator[ScoredBatch] | Iterator[EmbeddedBatch]:
        """Like `iter_predict`, with each batch's start index in TEXTS; with EMBEDDINGS,
        `EmbeddedBatch`es, whose embeddings NORMALIZE says whether to L2-normalise.

        A caller that pairs texts with other data (the rows they came from) looks its rows up
        by `start` rather than trusting that it counted along in step.

        Raises:
            InputError: When the window holding a non-str item is reached.
            ArtifactError: At once, for EMBEDDINGS with an artifact that has no pooled output.
        """
        require_int("batch_size", batch_size, 1)
        if isinstance(texts, str):
            raise TypeError("texts must be an iterable of str, got one str; wrap it in a list")
        if self.closed:  # raise now, not at the first next()
            raise ClosedError("this Classifier is closed")
        if not embeddings:
            scored = self._scored_batches(iter(texts), batch_size, self._scores)
            return (ScoredBatch(start, *outputs) for start, outputs in scored)
        self._require_embeddings()  # now, not at the first next()
        embedded = self._scored_batches(iter(texts), batch_size, partial(self.score_and_embed, normalize=normalize))
        return (EmbeddedBatch(start, *outputs) for start, outputs in embedded)

    def _scores(self, ids: np.ndarray, mask: np.ndarray) -> _Outputs:
        return (self.score(ids, mask),)

    def _scored_batches(self, texts: Iterator[str], batch_size: int, run: _Run) -> Iterator[tuple[int, _Outputs]]:
        if not self.sequence_buckets:
            yield from self._pipelined(_batches(texts, batch_size), run)
            return
        windows: deque[_Window] = deque()
        for start, outputs in self._pipelined(self._by_length(texts, batch_size, windows), run):
            window = windows[0]  # batches come back in order: this one is from the oldest window
            if window.fill(start, outputs):
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
            require_texts(window, start)  # indices of the input, before any reordering
            order = sorted(range(len(window)), key=lambda i: len(window[i]))
            windows.append(_Window(start, np.array(order)))
            grouped = [window[i] for i in order]
            yield from ((start + i, grouped[i : i + batch_size]) for i in range(0, len(grouped), batch_size))

    def _pipelined(self, batches: Iterator[tuple[int, list[str]]], run: _Run) -> Iterator[tuple[int, _Outputs]]:
        """RUN the model on BATCHES in order while the next ones are encoded on the prefetch thread."""
        first, second = next(batches, None), next(batches, None)
        if first is None:
            return
        if second is None:  # a single batch (batch-1 latency): nothing to overlap with
            yield first[0], run(*self.encode(first[1], start=first[0]))
            return
        pending: deque[tuple[int, Future[tuple[np.ndarray, np.ndarray]]]] = deque()
        try:
            for start, batch in chain((first, second), batches):
                pending.append((start, self._prefetcher.submit(self.encode, batch, start=start)))
                if len(pending) > _PREFETCH:
                    start, encoded = pending.popleft()
                    yield start, run(*encoded.result())
            while pending:
                start, encoded = pending.popleft()
                yield start, run(*encoded.result())
        finally:
            for _, future in pending:  # the consumer stopped early: skip what is still queued
                future.cancel()

    def encode(self, texts: Sequence[str], *, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Check, clean and tokenize TEXTS (on any thread: the tokenizer is shared).

        Args:
            start: Index of `texts[0]` in the caller's whole input, for error messages.

        Returns:
            int64 token ids and attention mask, each [len(texts), sequence_length].
        """
        require_texts(texts, start)
        if self.clean:
            texts = [clean_tweet(text) for text in texts]
        return self._tokenizer.encode(texts)

    def score(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Probabilities, float32 [n, n_labels], for encoded texts (see `encode`).

        With sequence buckets, each row runs at the smallest bucket that holds it (see
        `_by_bucket`).
        """
        (probabilities,) = self._by_bucket(ids, mask, lambda *fitted: (sigmoid(self.model.run(*fitted)),))
        return probabilities

    def score_and_embed(
        self, ids: np.ndarray, mask: np.ndarray, *, normalize: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and sentence embeddings, float32 [n, n_labels] and [n, embedding_width],
        for encoded texts, from one model run (see `score`).

        Args:
            normalize: L2-normalise the embeddings; False gives the raw pooler output.

        Raises:
            ArtifactError: The artifact has no pooled output (see `embedding_width`).
        """
        self._require_embeddings()
        logits, pooled = self._by_bucket(ids, mask, self.model.run_with_pooled)
        return sigmoid(logits), l2_normalize(pooled) if normalize else pooled

    def _by_bucket(self, ids: np.ndarray, mask: np.ndarray, run: _Run) -> _Outputs:
        """RUN's outputs for the rows of IDS and MASK, each row cut to its sequence bucket.

        Where the model says so (`Model.run_per_bucket`: the CPU), a batch whose rows fall in
        different buckets runs once per bucket: a run there costs about what its positions
        cost (measured: 0.84x the model time of one run at the longest row's bucket, 16 random
        tweets, full-size int8, `python -m benchmarks.bucket_policy`). The Service therefore
        batches texts of one bucket there (`Service(bucket_batches=)`). Otherwise the batch
        runs once, at its longest row's bucket.
        """
        if not self.runs_per_bucket or len(mask) < 2:
            return run(*self._fit(ids, mask))
        widths = np.searchsorted(self.sequence_buckets, mask.sum(axis=1))
        groups = [np.flatnonzero(widths == width) for width in np.unique(widths)]
        if len(groups) == 1:
            return run(*self._fit(ids, mask))
        parts = [run(*self._fit(ids[rows], mask[rows])) for rows in groups]
        outputs = tuple(np.empty((len(mask), *output.shape[1:]), output.dtype) for output in parts[0])
        for rows, part in zip(groups, parts):
            for output, values in zip(outputs, part):
                output[rows] = values
        return outputs

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
    """One window of the input being scored out of order: where its outputs go back."""

    def __init__(self, start: int, order: np.ndarray) -> None:
        self.start = start
        self.order = order  # order[k]: the window index of the k-th text scored
        self.outputs: _Outputs = ()  # per output (scores, embeddings), in input order
        self._missing = len(order)

    def fill(self, start: int, outputs: _Outputs) -> bool:
        """Put the rows of the batch at START back in input order; whether the window is now complete."""
        if not self.outputs:  # shaped by the first batch: scores, and embeddings when asked for
            self.outputs = tuple(np.empty((len(self.order), part.shape[1]), part.dtype) for part in outputs)
        rows = self.order[start - self.start : start - self.start + len(outputs[0])]
        for column, part in zip(self.outputs, outputs):
            column[rows] = part
        self._missing -= len(rows)
        return self._missing == 0

    def batches(self, batch_size: int) -> Iterator[tuple[int, _Outputs]]:
        return (
            (self.start + i, tuple(column[i : i + batch_size] for column in self.outputs))
            for i in range(0, len(self.order), batch_size)
        )


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


def _stacked(parts: list[np.ndarray], width: int) -> np.ndarray:
    """PARTS one after the other; an empty float32 [0, WIDTH] for no input."""
    return np.concatenate(parts) if parts else np.empty((0, width), dtype=np.float32)


def _window_size(batch_size: int) -> int:
    """Texts read and grouped by length at a time, with buckets: whole batches of BATCH_SIZE."""
    return batch_size * max(1, _WINDOW // batch_size)


def _batches(texts: Iterator[str], size: int) -> Iterator[tuple[int, list[str]]]:
    """(index of the first item, items) for consecutive slices of SIZE items."""
    start = 0
    while batch := list(islice(texts, size)):
        yield start, batch
        start += len(batch)
