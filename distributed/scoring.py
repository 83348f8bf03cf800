"""Scoring a Ray Dataset: one classifier per actor, batches of a text column in, score columns out.

Ray Data moves the rows; vigil only scores them. Each actor of the pool opens the artifact once
(`Classifier.open` verifies and loads the model, which is the slow part) and then scores every
batch Ray hands it, so a pool of N actors holds N models, one per GPU on a GPU cluster.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
from vigil.runtime import Classifier
from vigil.runtime.errors import InputError

__all__ = ["Scorer", "score_dataset"]

Thresholds = float | dict[str, float] | None


class Scorer:
    """A callable class for `Dataset.map_batches`: adds one float32 column per label to each batch.

    Batches may be numpy (a dict of column arrays) or pandas; the result has the batch's kind,
    every input column kept. With `labels`, a 0/1 int8 column `<label>_pred` per label follows
    (probability at or above the label's threshold), as in `vigil classify --labels`.
    """

    def __init__(
        self,
        artifact: str | os.PathLike[str],
        *,
        text_column: str = "text",
        provider: str = "auto",
        variant: str | None = None,
        thresholds: Thresholds = None,
        threads: int | None = None,
        labels: bool = False,
        model_batch_size: int = 64,
    ) -> None:
        with warnings.catch_warnings():  # the driver says once that a stand-in is random, not each actor
            warnings.filterwarnings("ignore", message=".*random-weight stand-in", category=UserWarning)
            self._clf = Classifier.open(
                artifact, provider=provider, variant=variant, thresholds=thresholds, threads=threads
            )
        self._text_column = text_column
        self._labels = labels
        self._model_batch_size = model_batch_size

    def __call__(self, batch: Any) -> Any:
        """BATCH with the score columns added; InputError if a value of the text column is not a str."""
        texts = batch[self._text_column]
        texts = texts.tolist() if hasattr(texts, "tolist") else list(texts)
        try:
            probs = self._clf.predict(texts, batch_size=self._model_batch_size)
        except InputError as exc:
            raise InputError(f"column {self._text_column!r}: {exc}") from None
        return _with_scores(batch, self._clf, probs, self._labels)


def _with_scores(batch: Any, clf: Classifier, probs: np.ndarray, labels: bool) -> Any:
    """BATCH (dict of arrays or DataFrame) plus one column per label and, with LABELS, per decision."""
    columns = {label: np.ascontiguousarray(probs[:, i]) for i, label in enumerate(clf.labels)}
    if labels:
        decisions = clf.decide(probs).astype(np.int8)
        columns |= {f"{label}_pred": decisions[:, i] for i, label in enumerate(clf.labels)}
    if isinstance(batch, dict):
        return {**batch, **columns}
    return batch.assign(**columns)


def score_dataset(
    ds: Any,
    artifact: str | os.PathLike[str],
    *,
    text_column: str = "text",
    batch_size: int = 1024,
    model_batch_size: int = 64,
    actors: int = 1,
    gpus_per_actor: float = 0,
    cpus_per_actor: float = 1,
    threads: int | None = None,
    variant: str | None = None,
    provider: str = "auto",
    thresholds: Thresholds = None,
    labels: bool = False,
) -> Any:
    """DS with one float32 score column per label (and `<label>_pred` with LABELS), lazily.

    Args:
        ds: A `ray.data.Dataset` with a string column TEXT_COLUMN.
        artifact: The artifact directory, readable at the same path on every node.
        batch_size: Rows Ray hands an actor at a time (larger amortizes Ray's per-call cost).
        model_batch_size: Rows per model run inside an actor, as `vigil classify --batch-size`.
        actors: Size of the fixed actor pool; one per GPU on a GPU cluster.
        gpus_per_actor: GPUs Ray reserves per actor (1 on GPU nodes, 0 on CPUs).
        cpus_per_actor: CPUs Ray reserves per actor.
        threads: ONNX Runtime intra-op threads per actor; None: one per physical core.
        variant, provider, thresholds: As for `Classifier.open`.

    Returns:
        The scored `ray.data.Dataset` (nothing runs until it is consumed or written).

    On a CPU-only cluster, leave some logical CPUs unreserved (ACTORS * CPUS_PER_ACTOR below
    the cluster's CPUs): Ray's read and write tasks need them, or the job waits for ever.
    """
    from ray.data import ActorPoolStrategy

    # Blocks of BATCH_SIZE rows (a streaming split, no shuffle): one large file is one block
    # as read, which only one actor of the pool could take.
    ds = ds.repartition(target_num_rows_per_block=batch_size)
    # Retries are Ray Data's defaults for actor pools: an actor lost with its node or process
    # is restarted and the tasks it held are run again (an InputError is not retried).
    return ds.map_batches(
        Scorer,
        fn_constructor_args=(str(artifact),),
        fn_constructor_kwargs={
            "text_column": text_column,
            "provider": provider,
            "variant": variant,
            "thresholds": thresholds,
            "threads": threads,
            "labels": labels,
            "model_batch_size": model_batch_size,
        },
        batch_size=batch_size,
        batch_format="numpy",
        compute=ActorPoolStrategy(size=actors),
        num_cpus=cpus_per_actor,
        num_gpus=gpus_per_actor or None,
    )
