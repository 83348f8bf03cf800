"""Check every exported variant against the PyTorch fp32 reference on real tweets.

An artifact is only worth shipping if it answers like the checkpoint it came from. Export
scores a fixed multilingual sample (cleaned as the model card does, tokenized by the
artifact's own `tokenizer.json`) with the PyTorch model and with each ONNX variant on ONNX
Runtime's CPU provider, and refuses variants outside their tolerance.

Tolerances, per precision:
- fp32: probabilities within 1e-4 (fusion only reorders float arithmetic; measured ~1e-6).
- fp16: probabilities within 5e-3 (fp16 keeps ~3 significant digits; measured 2e-4 on
  real MiniLM weights, 1.6e-3 on the full-size random stand-in).
- fp32 and fp16: every label decision at 0.5 agrees with the reference, except where the
  reference probability lies within the probability tolerance of 0.5 (the borderline
  band): there the variant's documented error may land on the other side, so such flips
  are counted (`borderline_flips`) and reported instead of refusing an exact export.
- Sequence buckets (fp32, int8 and fused fp16, whose sequence axis is symbolic): at each
  bucket, every sample tweet that fits it scores within `BUCKET_TOLERANCES` (1e-5; 1e-3 for
  fp16) of the same variant at the full length, because right padding under a mask must
  not change a score.
- int8: static quantization rounds weights and the activations they meet to 8 bits
  (activation ranges calibrated at export), so small input-dependent shifts are its
  nature: >= 99% of all decisions agree (what the card's users act on) and no probability
  moves by more than 0.15 (a guard against a broken int8, not its typical error). The
  agreement must hold beyond the sample: its one-sided 95% Wilson lower bound must reach
  99%, so that 1,536 decisions vouch for tweets export never saw (a 4x256 BERT whose int8
  agreed on 99.28% of the sample agreed on 98.71% of 24,248 tweets). On the bundled
  sample that allows 8 flips of 1,536.
  Measured on this sample: 99.74% and 0.026 on the full-size random stand-in, 99.61% and
  0.026 on real MiniLM weights (no layer kept fp32, int8 weights); a 4x256 BERT initialised
  with std 0.1 reaches at best 10 flips (uint8 weights, one layer of four in fp32), so it
  gets no int8: on all 24,248 tweets such an int8 agreed on 98.97 to 99.09 %.
- Pooled output (the sentence embedding, every variant): per tweet, the cosine similarity
  with PyTorch's `pooler_output` is at least `POOLED_MIN_COSINE`: 0.99999 for fp32, 0.999
  for fp16, 0.99 for int8. Cosine, because the embedding is used L2-normalised (direction
  only); the bounds follow each precision's rounding as the probability bounds do. fp32
  and fp16 outside it are refused. int8 is not: it exists to score fast on CPUs, and its
  scores are held to their own tolerance above, while 8-bit activations move a 768-wide
  direction more than six averaged logits (real MiniLM weights: min cosine 0.985, mean
  0.994, with scores within tolerance). Its figures are recorded, and the runtime refuses
  to embed with a variant whose embeddings missed their bound (fp32 embeds on CPUs).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np
from vigil.runtime.engine import sigmoid
from vigil.runtime.preprocess import clean_tweet

from .errors import ExportError

__all__ = [
    "BUCKET_TOLERANCES",
    "POOLED_MIN_COSINE",
    "POOLED_REFUSES",
    "THRESHOLD",
    "TOLERANCES",
    "Outputs",
    "Tolerance",
    "bucket_agreement",
    "by_length",
    "check",
    "compare",
    "compare_pooled",
    "cpu_session",
    "load_calibration",
    "load_sample",
    "onnx_logits",
    "onnx_outputs",
    "passed",
    "reference_logits",
    "reference_outputs",
]

THRESHOLD = 0.5
# Max |probability difference| of a bucket against the full length, per precision: fp32
# and int8 kernels sum a masked position's exact zero, so only float reordering remains;
# fp16 kernels may tile a shorter sequence differently and round in another order.
BUCKET_TOLERANCES = {"fp32": 1e-5, "int8": 1e-5, "fp16": 1e-3}
# Least cosine similarity of each tweet's pooled output with PyTorch's pooler_output.
POOLED_MIN_COSINE = {"fp32": 0.99999, "fp16": 0.999, "int8": 0.99}
# Precisions refused when their pooled output misses its bound; int8's is recorded only (above).
POOLED_REFUSES = frozenset({"fp32", "fp16"})


class Outputs(NamedTuple):
    """What a model returns for a batch of tweets: logits [n, labels], pooled [n, hidden]."""

    logits: np.ndarray
    pooled: np.ndarray


@dataclass(frozen=True)
class Tolerance:
    """How far a variant may stray from the fp32 PyTorch reference on the sample."""

    max_prob_diff: float
    min_label_agreement: float  # fraction of decisions outside the borderline band
    borderline_band: float  # decisions with |p_ref - 0.5| <= this are not held to agreement
    # One-sided confidence that agreement beyond the sample reaches min_label_agreement
    # (its Wilson lower bound is held to it); 0 holds the sample's own figure to it.
    confidence: float = 0.0


TOLERANCES = {
    "fp32": Tolerance(max_prob_diff=1e-4, min_label_agreement=1.0, borderline_band=1e-4),
    "fp16": Tolerance(max_prob_diff=5e-3, min_label_agreement=1.0, borderline_band=5e-3),
    "int8": Tolerance(max_prob_diff=0.15, min_label_agreement=0.99, borderline_band=0.0, confidence=0.95),
}


def load_sample(path: str | Path | None = None) -> list[str]:
    """Cleaned tweets, one per line, from PATH or the multilingual sample shipped with vigil."""
    if path is None:
        path = Path(str(resources.files("vigil.export") / "data" / "validation-tweets.txt"))
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [clean_tweet(line) for line in lines if line.strip()]


def load_calibration(path: str | Path | None, validation: list[str]) -> list[str]:
    """Calibration tweets for static int8: PATH or the bundled sample, never the validation sample.

    Calibrating on the tweets int8 is validated on would make the validation flattering.
    """
    if path is None:
        path = Path(str(resources.files("vigil.export") / "data" / "calibration-tweets.txt"))
    try:
        texts = load_sample(path)
    except UnicodeDecodeError as exc:
        raise ExportError(f"calibration file {path} is not UTF-8 text") from exc
    if not texts:
        raise ExportError(f"calibration file {path} has no tweets")
    if texts == validation:
        raise ExportError(f"calibration file {path} is the validation sample; calibrate on different tweets")
    return texts


def reference_outputs(model, ids: np.ndarray, mask: np.ndarray, batch_size: int = 64) -> Outputs:
    """fp32 logits and pooler output of the PyTorch model, the ground truth every variant is
    held to.

    Rows run in batches of similar length, each cut to its longest row, as the model card's
    pipeline pads a batch only to its longest text: right padding under a mask changes no
    score, and on the bundled sample this skips a fifth of the positions. The pooler output is
    caught on its way into the head (a forward hook on `bert.pooler`), so the logits stay
    those of the model's own forward, and `pooled` is exactly what
    `model.bert(...).pooler_output` returns.
    """
    import torch

    caught = []
    logits = np.zeros((len(ids), model.config.num_labels), dtype=np.float32)
    pooled = np.zeros((len(ids), model.config.hidden_size), dtype=np.float32)
    hook = model.bert.pooler.register_forward_hook(lambda module, args, output: caught.append(output))
    try:
        with torch.no_grad():
            for rows, width in by_length(mask, batch_size):
                out = model(input_ids=torch.from_numpy(ids[rows, :width]), attention_mask=torch.from_numpy(mask[rows, :width]))
                logits[rows], pooled[rows] = out.logits.float().numpy(), caught.pop().float().numpy()
    finally:
        hook.remove()
    return Outputs(logits, pooled)


def by_length(mask: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, int]]:
    """Batches of the rows of MASK (right-padded), shortest first: each batch's row indices and
    the length of its longest row, to which the batch can be cut."""
    lengths = mask.sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        yield rows, max(int(lengths[rows].max()), 1)


def reference_logits(model, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """fp32 logits of the PyTorch model (see `reference_outputs`)."""
    return reference_outputs(model, ids, mask).logits


def onnx_logits(model: Path | Any, ids: np.ndarray, mask: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Logits of an ONNX variant (a file, or a session of `cpu_session`) on ONNX Runtime's CPU
    provider, in batches."""
    session = _session(model)
    (logits,) = _session_outputs(session, ids, mask, [session.get_outputs()[0].name], batch_size)
    return logits


def onnx_outputs(model: Path | Any, ids: np.ndarray, mask: np.ndarray, batch_size: int = 64) -> Outputs:
    """Logits and pooled output of an ONNX variant (a file or a session) on ONNX Runtime's
    CPU provider, in batches."""
    session = _session(model)
    names = [output.name for output in session.get_outputs()]
    return Outputs(*_session_outputs(session, ids, mask, names, batch_size))


def bucket_agreement(
    model: Path | Any,
    ids: np.ndarray,
    mask: np.ndarray,
    buckets: tuple[int, ...],
    precision: str = "fp32",
    full: np.ndarray | None = None,
) -> dict:
    """How far each bucket's scores lie from the full length's, for the tweets that fit it.

    MODEL is the variant's file, or its session when the caller has one open. IDS and MASK
    are right-padded to the full length; a tweet fits a bucket when its mask ends within
    it. FULL, the variant's logits at the full length when the caller has them (export
    validated them already), saves scoring the sample again. The full length itself is the
    yardstick, so only the shorter buckets are run. The verdict holds every bucket to
    PRECISION's `BUCKET_TOLERANCES`.
    """
    tolerance = BUCKET_TOLERANCES[precision]
    session = _session(model)
    names = [session.get_outputs()[0].name]
    if full is None:
        (full,) = _session_outputs(session, ids, mask, names)
    full = sigmoid(full.astype(np.float64), np.float64)
    lengths = mask.sum(axis=1)
    figures = {}
    for width in (width for width in buckets if width < ids.shape[1]):
        fits = lengths <= width
        (logits,) = _session_outputs(session, ids[fits, :width].copy(), mask[fits, :width].copy(), names)
        diff = np.abs(sigmoid(logits.astype(np.float64), np.float64) - full[fits])
        figures[str(width)] = {"samples": int(fits.sum()), "max_abs_prob_diff": float(diff.max(initial=0.0))}
    worst = max((entry["max_abs_prob_diff"] for entry in figures.values()), default=0.0)
    return {"buckets": figures, "tolerance": tolerance, "passed": bool(worst <= tolerance)}


def cpu_session(path: Path):
    """An ONNX Runtime CPU session of PATH: open one to score it more than once, since loading
    a full-size variant takes seconds."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # fp16 graphs on the CPU warn about inserted casts
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _session(model: Path | Any):
    return cpu_session(model) if isinstance(model, (str, Path)) else model


def _session_outputs(
    session, ids: np.ndarray, mask: np.ndarray, names: list[str], batch_size: int = 64
) -> list[np.ndarray]:
    """The graph outputs NAMES, float32, for IDS and MASK run in batches."""
    if not len(ids):
        widths = {output.name: output.shape[1] for output in session.get_outputs()}
        return [np.zeros((0, widths[name]), dtype=np.float32) for name in names]
    chunks = [
        session.run(names, {"input_ids": ids[i : i + batch_size], "attention_mask": mask[i : i + batch_size]})
        for i in range(0, len(ids), batch_size)
    ]
    return [np.concatenate(parts).astype(np.float32) for parts in zip(*chunks)]


def compare(reference: np.ndarray, candidate: np.ndarray, tolerance: Tolerance) -> dict:
    """Validation figures of CANDIDATE logits against REFERENCE logits, with the verdict."""
    ref_p, cand_p = (sigmoid(x.astype(np.float64), np.float64) for x in (reference, candidate))
    flips = (ref_p >= THRESHOLD) != (cand_p >= THRESHOLD)
    borderline = np.abs(ref_p - THRESHOLD) <= tolerance.borderline_band
    clear = ~borderline
    agreement_bound = _agreement_bound(int(clear.sum()), int(flips[clear].sum()), tolerance.confidence)
    max_prob_diff = float(np.abs(ref_p - cand_p).max())
    return {
        "samples": int(reference.shape[0]),
        "decisions": int(flips.size),
        "max_abs_logit_diff": float(np.abs(reference - candidate).max()),
        "max_abs_prob_diff": max_prob_diff,
        "label_agreement": float(1.0 - flips.mean()),
        "label_flips": int(flips.sum()),
        "borderline_flips": int((flips & borderline).sum()),
        "label_agreement_bound": agreement_bound,
        "tolerance": asdict(tolerance),
        "passed": bool(
            np.isfinite(candidate).all()
            and max_prob_diff <= tolerance.max_prob_diff
            and agreement_bound >= tolerance.min_label_agreement
        ),
    }


def _agreement_bound(decisions: int, flips: int, confidence: float) -> float:
    """The share of decisions that agree, or at CONFIDENCE > 0 its one-sided Wilson lower bound:
    what the sample vouches for on tweets it does not hold."""
    agreement = 1.0 - flips / max(decisions, 1)
    if confidence <= 0 or decisions == 0:
        return agreement
    z = NormalDist().inv_cdf(confidence)
    shrink = 1 + z * z / decisions
    centre = (agreement + z * z / (2 * decisions)) / shrink
    spread = z * math.sqrt(agreement * (1 - agreement) / decisions + z * z / (4 * decisions * decisions)) / shrink
    return centre - spread


def compare_pooled(reference: np.ndarray, candidate: np.ndarray, min_cosine: float) -> dict:
    """Per-tweet cosine similarity of CANDIDATE pooled outputs with REFERENCE ones, with the verdict."""
    ref, cand = reference.astype(np.float64), candidate.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):  # a zero vector's cosine is NaN, and fails
        cosine = (ref * cand).sum(axis=1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1))
    return {
        "samples": int(reference.shape[0]),
        "width": int(reference.shape[1]),
        "min_cosine": float(cosine.min()),
        "mean_cosine": float(cosine.mean()),
        "max_abs_diff": float(np.abs(ref - cand).max()),
        "tolerance": {"min_cosine": min_cosine},
        "passed": bool(np.isfinite(cosine).all() and cosine.min() >= min_cosine),
    }


def check(reference: Outputs, candidate: Outputs, precision: str) -> dict[str, dict[str, Any]]:
    """Both verdicts on a variant of PRECISION: "validation" (its scores) and "pooled_validation"."""
    return {
        "validation": compare(reference.logits, candidate.logits, TOLERANCES[precision]),
        "pooled_validation": compare_pooled(reference.pooled, candidate.pooled, POOLED_MIN_COSINE[precision]),
    }


def passed(entry: dict[str, Any], precision: str) -> bool:
    """Whether the verdicts of `check` that ENTRY holds (among other keys) let a variant of
    PRECISION ship: its scores always, its pooled output where `POOLED_REFUSES` says so."""
    return entry["validation"]["passed"] and (entry["pooled_validation"]["passed"] or precision not in POOLED_REFUSES)
