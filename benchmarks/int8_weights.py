"""int8's weight types and layer fallbacks against PyTorch fp32, on every tweet and on export's sample.

Usage: python -m benchmarks.int8_weights CHECKPOINT [--tweets DIR] [--out FILE]

What export's accuracy ladder (`vigil.export.int8`) chooses between, measured where its
1,536 validation decisions cannot tell them apart: for int8 and uint8 weights, every weight
MatMul quantized, then each encoder layer kept fp32 in turn. Calibration, quantization and
validation are export's own functions. Measurement only: it reads the vendored tweets.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from vigil.export import graphs, int8, validate
from vigil.export.checkpoint import load_checkpoint
from vigil.runtime.preprocess import clean_tweet
from vigil.runtime.tokenizer import encode, load_tokenizer

from .workload import DEFAULT_TWEETS, load_tweets


def _agreement(reference: np.ndarray, path: Path, ids: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    result = validate.compare(reference, validate.onnx_logits(path, ids, mask), validate.TOLERANCES["int8"])
    return {key: result[key] for key in ("label_agreement", "label_flips", "max_abs_prob_diff")}


def measure(checkpoint: str, tweets: Path) -> dict:
    """Agreement of each ladder step on all TWEETS and on the validation sample."""
    model = load_checkpoint(checkpoint).model
    tokenizer = load_tokenizer(Path(checkpoint) / "tokenizer.json", 32, int(model.config.pad_token_id or 0))
    validation = validate.load_sample()
    sets = {
        "all_tweets": encode(tokenizer, [clean_tweet(t) for t in load_tweets(tweets).texts]),
        "validation_sample": encode(tokenizer, validation),
    }
    references = {name: validate.reference_logits(model, ids, mask) for name, (ids, mask) in sets.items()}
    report: dict = {"checkpoint": checkpoint, "tweets": len(sets["all_tweets"][0]), "steps": []}
    with tempfile.TemporaryDirectory(prefix="vigil-int8-weights-") as scratch:
        plain, ranges, quantized = (Path(scratch) / name for name in ("plain.onnx", "ranges.json", "int8.onnx"))
        graphs.export_fp32(model, plain, 32)
        graphs.calibrate(plain, *encode(tokenizer, validate.load_calibration(None, validation)), ranges)
        layers = int8.layer_units(graphs.matmul_nodes(plain))
        for weights in int8.WEIGHT_TYPES:
            for fp32_layer in (None, *layers):
                graphs.quantize_int8(plain, quantized, ranges, weights=weights, exclude=layers.get(fp32_layer, ()))
                step = {"weights": weights, "fp32_layer": fp32_layer}
                for name, (ids, mask) in sets.items():
                    step[name] = _agreement(references[name], quantized, ids, mask)
                print(json.dumps(step), flush=True)
                report["steps"].append(step)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--tweets", type=Path, default=DEFAULT_TWEETS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = measure(args.checkpoint, args.tweets)
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
