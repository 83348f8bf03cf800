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
- int8: static quantization rounds weights and activations to 8 bits (activation ranges
  calibrated at export), so small input-dependent shifts are its nature: >= 98% of all
  decisions agree and probabilities stay within 0.1. Measured on this sample: 98.96% and
  0.089 on real MiniLM weights (one layer of six kept fp32), 99.22% and 0.084 on the
  full-size random stand-in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from vigil.runtime.engine import sigmoid
from vigil.runtime.preprocess import clean_tweet

from .errors import ExportError

__all__ = [
    "BUCKET_TOLERANCES",
    "THRESHOLD",
    "TOLERANCES",
    "Tolerance",
    "bucket_agreement",
    "compare",
    "load_calibration",
    "load_sample",
    "onnx_logits",
    "reference_logits",
]

THRESHOLD = 0.5
# Max |probability difference| of a bucket against the full length, per precision: fp32
# and int8 kernels sum a masked position's exact zero, so only float reordering remains;
# fp16 kernels may tile a shorter sequence differently and round in another order.
BUCKET_TOLERANCES = {"fp32": 1e-5, "int8": 1e-5, "fp16": 1e-3}


@dataclass(frozen=True)
class Tolerance:
    """How far a variant may stray from the fp32 PyTorch reference on the sample."""

    max_prob_diff: float
    min_label_agreement: float  # fraction of decisions outside the borderline band
    borderline_band: float  # decisions with |p_ref - 0.5| <= this are not held to agreement


TOLERANCES = {
    "fp32": Tolerance(max_prob_diff=1e-4, min_label_agreement=1.0, borderline_band=1e-4),
    "fp16": Tolerance(max_prob_diff=5e-3, min_label_agreement=1.0, borderline_band=5e-3),
    "int8": Tolerance(max_prob_diff=0.1, min_label_agreement=0.98, borderline_band=0.0),
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


def reference_logits(model, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """fp32 logits of the PyTorch model, the ground truth every variant is held to."""
    import torch

    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    return out.logits.float().numpy()


def onnx_logits(path: Path, ids: np.ndarray, mask: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Logits of an ONNX variant on ONNX Runtime's CPU provider, in batches."""
    return _session_logits(_cpu_session(path), ids, mask, batch_size)


def bucket_agreement(
    path: Path, ids: np.ndarray, mask: np.ndarray, buckets: tuple[int, ...], precision: str = "fp32"
) -> dict:
    """How far each bucket's scores lie from the full length's, for the tweets that fit it.

    IDS and MASK are right-padded to the full length; a tweet fits a bucket when its mask
    ends within it. The verdict holds every bucket to PRECISION's `BUCKET_TOLERANCES`.
    """
    tolerance = BUCKET_TOLERANCES[precision]
    session = _cpu_session(path)
    full = sigmoid(_session_logits(session, ids, mask).astype(np.float64), np.float64)
    lengths = mask.sum(axis=1)
    figures = {}
    for width in buckets:
        fits = lengths <= width
        logits = _session_logits(session, ids[fits, :width].copy(), mask[fits, :width].copy())
        diff = np.abs(sigmoid(logits.astype(np.float64), np.float64) - full[fits])
        figures[str(width)] = {"samples": int(fits.sum()), "max_abs_prob_diff": float(diff.max(initial=0.0))}
    worst = max(entry["max_abs_prob_diff"] for entry in figures.values())
    return {"buckets": figures, "tolerance": tolerance, "passed": bool(worst <= tolerance)}


def _cpu_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # fp16 graphs on the CPU warn about inserted casts
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _session_logits(session, ids: np.ndarray, mask: np.ndarray, batch_size: int = 64) -> np.ndarray:
    if not len(ids):
        return np.zeros((0, session.get_outputs()[0].shape[1]), dtype=np.float32)
    chunks = [
        session.run(None, {"input_ids": ids[i : i + batch_size], "attention_mask": mask[i : i + batch_size]})[0]
        for i in range(0, len(ids), batch_size)
    ]
    return np.concatenate(chunks).astype(np.float32)


def compare(reference: np.ndarray, candidate: np.ndarray, tolerance: Tolerance) -> dict:
    """Validation figures of CANDIDATE logits against REFERENCE logits, with the verdict."""
    ref_p, cand_p = (sigmoid(x.astype(np.float64), np.float64) for x in (reference, candidate))
    flips = (ref_p >= THRESHOLD) != (cand_p >= THRESHOLD)
    borderline = np.abs(ref_p - THRESHOLD) <= tolerance.borderline_band
    clear = ~borderline
    clear_agreement = 1.0 - flips[clear].sum() / max(int(clear.sum()), 1)
    max_prob_diff = float(np.abs(ref_p - cand_p).max())
    return {
        "samples": int(reference.shape[0]),
        "decisions": int(flips.size),
        "max_abs_logit_diff": float(np.abs(reference - candidate).max()),
        "max_abs_prob_diff": max_prob_diff,
        "label_agreement": float(1.0 - flips.mean()),
        "label_flips": int(flips.sum()),
        "borderline_flips": int((flips & borderline).sum()),
        "tolerance": asdict(tolerance),
        "passed": bool(
            np.isfinite(candidate).all()
            and max_prob_diff <= tolerance.max_prob_diff
            and clear_agreement >= tolerance.min_label_agreement
        ),
    }
