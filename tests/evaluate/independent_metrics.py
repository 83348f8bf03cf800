"""The metrics again, without scikit-learn, to check vigil.evaluate against.

F1, precision and recall from plain confusion counts; ROC-AUC as the Mann-Whitney U
statistic over average ranks, which equals the area under the ROC curve (ties count half).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def confusion(truth: np.ndarray, decisions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True positives, false positives and false negatives per column."""
    truth, decisions = truth.astype(bool), decisions.astype(bool)
    return (truth & decisions).sum(0), (~truth & decisions).sum(0), (truth & ~decisions).sum(0)


def precision_recall_f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each 0 where its denominator is 0 (scikit-learn's zero_division=0)."""
    tp, fp, fn = (np.asarray(x, dtype=float) for x in (tp, fp, fn))
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=tp + fp > 0)
    recall = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=tp + fn > 0)
    f1 = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp), where=2 * tp + fp + fn > 0)
    return precision, recall, f1


def averaged(truth: np.ndarray, decisions: np.ndarray) -> dict[str, dict[str, float]]:
    """Micro (pooled counts) and macro (mean over labels) precision, recall and F1."""
    tp, fp, fn = confusion(truth, decisions)
    micro = precision_recall_f1(tp.sum(), fp.sum(), fn.sum())
    macro = [values.mean() for values in precision_recall_f1(tp, fp, fn)]
    names = ("precision", "recall", "f1")
    return {"micro": dict(zip(names, map(float, micro))), "macro": dict(zip(names, map(float, macro)))}


def mann_whitney_auc(truth: np.ndarray, scores: np.ndarray) -> float:
    """P(score of a positive > score of a negative) + P(equal) / 2, from ranks."""
    truth = np.asarray(truth).astype(bool).ravel()
    ranks = rankdata(np.asarray(scores, dtype=np.float64).ravel())  # ties get their average rank
    positives, negatives = truth.sum(), (~truth).sum()
    u = ranks[truth].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))
