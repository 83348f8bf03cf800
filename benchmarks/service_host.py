"""The Service's own host cost, without the model's: tokenizing ahead off and on, side by side.

Usage: python -m benchmarks.service_host ARTIFACT TWEETS_DIR [--clients 1,16,64] [--requests 6000]
       [--device-ms 0.5] [--device-us-per-text 20] [--rounds 2]

On a GPU the Service is bound by its host work (checking, queueing, tokenizing, futures),
not by the device: one process served 5,221 single-text requests/s on an H200 that computes
50,000 texts/s. No GPU is needed to measure that work. The real artifact's tokenizer does
the cleaning and tokenizing, and the model is replaced by one that computes nothing:

- `instant` answers at once, so the figures are the host path alone;
- `device` waits in `time.sleep` (the GIL released, as a CUDA sync does) for DEVICE_MS plus
  DEVICE_US_PER_TEXT a text, so host work can overlap it as it would a GPU's.

Closed-loop client threads each send one tweet at a time (`service_load.closed_loop`), until
REQUESTS are answered. Every round runs each model with `tokenize_ahead` off and on, in
alternating order; prints one JSON line per run.
"""

from __future__ import annotations

import json
import time

import numpy as np

from vigil.runtime import BatcherConfig, Classifier

from .measure import Budget
from .sequence_buckets import arguments, prepared
from .service_load import closed_loop


class _NoModel:
    """A classifier whose model computes nothing: it tokenizes as CLASSIFIER does, then
    answers zeros at once or after a GPU-like wait."""

    provider = "CUDAExecutionProvider"  # what the Service would see on a GPU
    concurrency = 1
    runs_per_bucket = False  # a GPU runs a batch once, at its longest text's bucket

    def __init__(self, classifier: Classifier, wait_s: float, wait_s_per_text: float) -> None:
        self.labels = classifier.labels
        self.encode = classifier.encode
        self._wait = (wait_s, wait_s_per_text)

    def score(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self._wait[0] or self._wait[1]:
            time.sleep(self._wait[0] + self._wait[1] * len(ids))
        return np.zeros((len(ids), len(self.labels)), dtype=np.float32)


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], limit=4096)
    parser.add_argument("--clients", default="1,16,64")
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--device-ms", type=float, default=0.5)
    parser.add_argument("--device-us-per-text", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    args, texts, classifier = prepared(parser)
    models = {
        "instant": _NoModel(classifier, 0.0, 0.0),
        "device": _NoModel(classifier, args.device_ms / 1e3, args.device_us_per_text / 1e6),
    }
    config, budget = BatcherConfig(max_batch_size=256), Budget(seconds=600.0, max_items=args.requests)
    for round_ in range(args.rounds):
        for name, model in models.items():
            for clients in map(int, args.clients.split(",")):
                for ahead in (bool(round_ % 2), not round_ % 2):
                    run = closed_loop(model, config, texts, clients, budget, tokenize_ahead=ahead)
                    print(json.dumps({"round": round_, "model": name, "clients": clients, "tokenize_ahead": ahead,
                                      "requests_per_s": round(run["achieved_rate"], 1),
                                      "p50_ms": round(run["latency"]["p50_ms"], 3),
                                      "p99_ms": round(run["latency"]["p99_ms"], 3),
                                      "mean_batch": round(run["mean_batch_size"], 2)}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
