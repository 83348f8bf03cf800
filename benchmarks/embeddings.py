"""Embeddings side by side: what returning the pooled output costs classification.

Usage: python benchmarks/embeddings.py ARTIFACT TWEETS_DIR [--variant fp32] [--limit N] [--rounds R]

One CPU classifier, bulk scoring at batch 64 of the same tweets, four ways:
- `predict`: classification, which fetches the logits only;
- `predict_embeddings`: `predict(..., embeddings=True)`, scores and embeddings from one pass;
- `embed`: embeddings alone;
- `predict_without_pooled`: classification on the same variant's graph as exported before
  embeddings (the `pooled` output removed, as an old artifact has it), with the same session
  options: what an artifact without the second output would classify at.
The ways take turns, round after round, each leading a round in turn, so a shared
machine's drift and the first run's place fall on all alike: each ratio to `predict` is the
median over rounds of that round's ratio, and texts/s the median of the rounds. Prints one
JSON line, with each way's spread over rounds (max - min, over the median) to judge the
noise by. Needs onnx (the export extra) to build the graph without `pooled`.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.sequence_buckets import arguments, prepared
from vigil.runtime import Classifier
from vigil.runtime.model import Model, create_session


def _without_pooled(classifier: Classifier, scratch: Path) -> Classifier:
    """CLASSIFIER's variant with a graph whose only output is the logits, opened the same way."""
    import onnx

    manifest = classifier.manifest
    graph = onnx.load(manifest.verified_path(manifest.variant(classifier.variant)))
    kept = [output for output in graph.graph.output if output.name != manifest.pooled_output]
    del graph.graph.output[:]
    graph.graph.output.extend(kept)
    path = scratch / "without-pooled.onnx"
    onnx.save(graph, path)
    plan = classifier.model.plan
    model = Model(create_session(path, plan), plan, classifier.sequence_buckets)
    return Classifier(dataclasses.replace(manifest, pooled_output=None, pooled_width=None), model)


def _texts_per_s(run: Callable[[list[str]], object], texts: list[str]) -> float:
    started = time.perf_counter()
    run(texts)
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], limit=2048)
    parser.add_argument("--rounds", type=int, default=3)
    args, texts, classifier = prepared(parser)
    with tempfile.TemporaryDirectory() as scratch, classifier, _without_pooled(classifier, Path(scratch)) as baseline:
        ways: dict[str, Callable[[list[str]], object]] = {
            "predict": lambda t: classifier.predict(t, batch_size=64),
            "predict_embeddings": lambda t: classifier.predict(t, batch_size=64, embeddings=True),
            "embed": lambda t: classifier.embed(t, batch_size=64),
            "predict_without_pooled": lambda t: baseline.predict(t, batch_size=64),
        }
        for run in ways.values():
            run(texts[:128])  # warm-up
        rounds: dict[str, list[float]] = {name: [] for name in ways}
        names = list(ways)
        for turn in range(args.rounds):
            for name in names[turn % len(names) :] + names[: turn % len(names)]:  # each way leads in turn
                rounds[name].append(_texts_per_s(ways[name], texts))
    figures = {name: round(statistics.median(values), 1) for name, values in rounds.items()}
    ratios = {
        f"{name}_vs_predict": round(statistics.median(a / b for a, b in zip(rounds[name], rounds["predict"])), 3)
        for name in ways
        if name != "predict"
    }
    spread = {name: round((max(v) - min(v)) / statistics.median(v), 3) for name, v in rounds.items()}
    print(json.dumps({
        "artifact": str(args.artifact), "variant": args.variant, "texts": len(texts), "rounds": args.rounds,
        "texts_per_s": figures, "ratios": ratios, "round_spread": spread,
    }))


if __name__ == "__main__":
    main()
