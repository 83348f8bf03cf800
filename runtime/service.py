"""`Service`: a `Classifier` behind the dynamic `Batcher`, for servers.

Callers on any thread, or on an event loop, submit one text each. The text is checked,
cleaned and tokenized at once on the caller's thread (with that thread's own tokenizer), so
a bad request fails before it is queued and the batcher's one dispatcher thread does nothing
but run the model: it stacks the queued rows, scores them in one run, and each future gets
its own row. On a GPU the model pads a batch up to its bucket with real rows and slices the
result; on the CPU batches run as they are.

CUDA graphs belong to the thread that captured them, so with graphs the service warms the
model up with one request (the empty text) on the dispatcher thread before it returns; the
observer sees that batch too.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType

import numpy as np

from .batcher import Batcher, BatcherConfig, BatchRecord
from .engine import Classifier
from .errors import InputError

__all__ = ["Service"]

_Row = tuple[np.ndarray, np.ndarray]  # one text's token ids and attention mask


class Service:
    """Scores single texts from many callers in dynamic batches.

    Args:
        classifier: Runs the model; the service does not close it.
        config: Batch size, batch wait, queue size and default submit timeout.
        observer: Called with a `BatchRecord` after every batch (see `Batcher`).
        name: Name of the dispatcher thread.

    Use it as a context manager, or call `close()`.
    """

    def __init__(
        self,
        classifier: Classifier,
        config: BatcherConfig = BatcherConfig(),
        *,
        observer: Callable[[BatchRecord], None] | None = None,
        name: str = "vigil-service",
    ) -> None:
        self._classifier = classifier
        self._batcher = Batcher(self._process, config, observer=observer, name=name)
        if classifier.model.cuda_graphs:  # capture on the dispatcher before taking requests
            try:
                self.submit("").result()
            except BaseException:
                self._batcher.close(wait=True)
                raise

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
        return self._batcher.submit(self._encode(text), timeout=timeout)

    async def submit_async(self, text: str, *, timeout: float | None = None) -> np.ndarray:
        """Queue TEXT and await its probabilities; cancelling the await cancels the request.

        TEXT is tokenized on the event loop's thread (tens of microseconds).

        Raises:
            InputError, OverloadedError, BatcherClosedError: As `submit`.
        """
        return await self._batcher.submit_async(self._encode(text), timeout=timeout)

    def close(self, wait: bool = True, *, cancel_pending: bool = False) -> None:
        """Stop accepting texts; answer the queued ones unless CANCEL_PENDING. Idempotent."""
        self._batcher.close(wait, cancel_pending=cancel_pending)

    def __enter__(self) -> Service:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _encode(self, text: str) -> _Row:
        if not isinstance(text, str):
            raise InputError(f"submitted text is {type(text).__name__}, not str")
        ids, mask = self._classifier.encode([text])
        return ids[0], mask[0]

    def _process(self, rows: list[_Row]) -> np.ndarray:
        """The dispatcher's batch: stack the rows, run the model once."""
        ids = np.stack([row[0] for row in rows])
        mask = np.stack([row[1] for row in rows])
        return self._classifier.score(ids, mask)
