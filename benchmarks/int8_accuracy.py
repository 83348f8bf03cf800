"""int8 vs PyTorch fp32 on a folder of tweets, batch dependence, and static-vs-dynamic speed.

Usage: python benchmarks/int8_accuracy.py CHECKPOINT ARTIFACT TWEETS_DIR [--limit N]
Measurement only (reads reference data the tests may not touch).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from vigil.export import validate
from vigil.export.checkpoint import load_checkpoint
from vigil.runtime.engine import sigmoid
from vigil.runtime.preprocess import clean_tweet
from vigil.runtime.tokenizer import encode, load_tokenizer


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _speed(session: ort.InferenceSession, ids, mask, rounds: int = 5) -> float:
    feed = {"input_ids": ids[:64], "attention_mask": mask[:64]}
    session.run(None, feed)
    started = time.perf_counter()
    for _ in range(rounds):
        session.run(None, feed)
    return 64 * rounds / (time.perf_counter() - started)


def _batch_dependence(path: Path, ids, mask) -> float:
    """Largest probability change of one of 64 tweets between scoring it alone and in their batch."""
    alone = validate.onnx_logits(path, ids[:64], mask[:64], batch_size=1)
    batched = validate.onnx_logits(path, ids[:64], mask[:64], batch_size=64)
    return float(np.abs(sigmoid(alone.astype(np.float64)) - sigmoid(batched.astype(np.float64))).max())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("artifact", type=Path)
    parser.add_argument("tweets", type=Path)
    parser.add_argument("--limit", type=int, default=0)
    args = parser.parse_args()
    texts = [clean_tweet(t) for f in sorted(args.tweets.glob("*.txt")) for t in f.read_text("utf-8").split("\n") if t.strip()]
    if args.limit:
        texts = texts[:: max(1, len(texts) // args.limit)]
    manifest = json.loads((args.artifact / "manifest.json").read_text())
    ids, mask = encode(load_tokenizer(args.artifact / "tokenizer.json", 32, manifest["pad_id"]), texts)
    model = load_checkpoint(args.checkpoint).model
    reference = validate.reference_logits(model, ids, mask)
    report = {"tweets": len(texts)}
    if "int8" in manifest["variants"]:
        path = args.artifact / "model-int8.onnx"
        result = validate.compare(reference, validate.onnx_logits(path, ids, mask), validate.TOLERANCES["int8"])
        report["int8_static"] = {k: result[k] for k in ("label_agreement", "max_abs_prob_diff", "label_flips")}
        report["int8_static"]["batch_dependence_max_dp"] = _batch_dependence(path, ids, mask)
    with tempfile.TemporaryDirectory() as tmp:  # today's dynamic int8, for the side-by-side
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        dynamic = Path(tmp) / "dyn.onnx"
        quantize_dynamic(str(args.artifact / "model-fp32.onnx"), str(dynamic), per_channel=True, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        result = validate.compare(reference, validate.onnx_logits(dynamic, ids, mask), validate.TOLERANCES["int8"])
        report["int8_dynamic"] = {k: result[k] for k in ("label_agreement", "max_abs_prob_diff", "label_flips")}
        report["int8_dynamic"]["batch_dependence_max_dp"] = _batch_dependence(dynamic, ids, mask)
        speeds = {"dynamic": _session(dynamic), "fp32": _session(args.artifact / "model-fp32.onnx")}
        if "int8" in manifest["variants"]:
            speeds["static"] = _session(args.artifact / "model-int8.onnx")
        report["texts_per_s_batch64_2threads"] = {name: round(_speed(s, ids, mask), 1) for name, s in speeds.items()}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
