"""Sentiment-regression metrics, with the literature's definitions (MMIM, MMSA).

- MAE and Pearson correlation on the raw predictions (correlation is 0 when
  either side is constant, rather than NaN).
- Acc-7 / Acc-5: clip to [-3, 3] / [-2, 2], round to the nearest integer
  (NumPy's half-to-even, as the reference code does), exact match.
- Acc-2 and weighted F1 two ways: "has0" (y >= 0 is positive) and "non0"
  (samples with y == 0 dropped, y > 0 is positive).
"""
from __future__ import annotations

import numpy as np

METRIC_NAMES = ("mae", "corr", "acc7", "acc5", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0")
# Every other metric is better when higher.
LOWER_IS_BETTER = ("mae",)
# MI diagnostics are read as percentiles of the training set's values (model/mmim.py): below
# this one a clip's value is "outside what the model saw in training".
OUTSIDE_PERCENTILE = 1.0
# Below this one it is "less expected than most training clips" (the app says so, and the
# served score trusts that voice or face less: export/trust.py).
UNEXPECTED_PERCENTILE = 5.0


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def weighted_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    """F1 per class averaged with class support as weights (sklearn's 'weighted')."""
    score = 0.0
    for c in np.unique(truth):
        tp = np.sum((pred == c) & (truth == c))
        fp = np.sum((pred == c) & (truth != c))
        fn = np.sum((pred != c) & (truth == c))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else 0.0
        score += f1 * np.mean(truth == c)
    return float(score)


def sentiment_metrics(pred, truth) -> dict[str, float]:
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    truth = np.asarray(truth, dtype=np.float64).reshape(-1)
    if pred.shape != truth.shape or pred.size == 0:
        raise ValueError(f"need equal, non-empty arrays; got {pred.shape} and {truth.shape}")
    out = {
        "mae": float(np.mean(np.abs(pred - truth))),
        "corr": pearson(pred, truth),
        "acc7": float(np.mean(np.round(np.clip(pred, -3, 3)) == np.round(np.clip(truth, -3, 3)))),
        "acc5": float(np.mean(np.round(np.clip(pred, -2, 2)) == np.round(np.clip(truth, -2, 2)))),
    }
    has0_truth, has0_pred = truth >= 0, pred >= 0
    out["acc2_has0"] = float(np.mean(has0_truth == has0_pred))
    out["f1_has0"] = weighted_f1(has0_truth, has0_pred)
    nonzero = truth != 0
    if nonzero.any():
        non0_truth, non0_pred = truth[nonzero] > 0, pred[nonzero] > 0
        out["acc2_non0"] = float(np.mean(non0_truth == non0_pred))
        out["f1_non0"] = weighted_f1(non0_truth, non0_pred)
    else:
        out["acc2_non0"] = out["f1_non0"] = float("nan")
    return out
