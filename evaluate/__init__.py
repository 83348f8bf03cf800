"""vigil.evaluate: how well an artifact classifies labelled tweets, and thresholds that do better.

`read_labelled` reads a file of tweets with their 0/1 labels; `evaluate` scores it with a
`Classifier` and measures per label (ROC-AUC, F1, precision, recall, support) per tweet,
per group and, optionally, against the PyTorch checkpoint; `calibrate` chooses each label's
threshold on it and `write_calibration` stores them in the artifact's manifest, where the
runtime picks them up by default.

Needs scikit-learn (the `evaluate` extra); `vigil.runtime` never imports this package.
"""

from .calibration import (
    CALIBRATION_METRICS,
    Calibration,
    LabelCalibration,
    calibrate,
    choose_threshold,
    write_calibration,
)
from .dataset import FORMATS, LabelledData, read_labelled
from .evaluation import Comparison, Evaluation, evaluate
from .metrics import MIN_SUPPORT, LabelMetrics, Metrics, Scores, compute_metrics, shortest_float32, support_warnings
from .reference import reference_probabilities

__all__ = [
    "read_labelled",
    "LabelledData",
    "FORMATS",
    "evaluate",
    "Evaluation",
    "Comparison",
    "compute_metrics",
    "Metrics",
    "LabelMetrics",
    "Scores",
    "MIN_SUPPORT",
    "support_warnings",
    "shortest_float32",
    "reference_probabilities",
    "calibrate",
    "choose_threshold",
    "Calibration",
    "LabelCalibration",
    "CALIBRATION_METRICS",
    "write_calibration",
]
