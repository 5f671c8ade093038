"""How much of the voice and the face the score keeps: less when they are unlike training.

The fusion network was trained on RAVDESS voices, plain English speech and FER faces. On a
voice it never saw the like of (another language, a synthetic voice, speech under loud
noise) it still passes on about a fifth of whatever that voice scores alone
(export/ship/reliability.py): it has no way to know it is guessing. The MI diagnostics
do know: BA text -> m and CPC fusion -> m fall below every training clip's value.

So each non-verbal modality m gets a trust weight from its own diagnostics,

    w_m = clip(p_m / FULL_TRUST_PERCENTILE, 0, 1),
    p_m = min(CPC fusion -> m percentile, BA text -> m percentile if the words are present),

1 from the 5th percentile of the training clips' values up (below it the app already calls a
clip "less expected than most training clips") and 0 below every training clip's value, and
the score keeps w_m of m's exact Shapley value:

    score = fused score - sum_m (1 - w_m) * shapley_m,    shapley_m <- w_m * shapley_m.

The Shapley values still add up to score - shapley_baseline, and a modality at weight 0
leaves the score where the training-mean version of it would. BA needs the words (it is
text -> m), so without them only CPC counts. The text is never weighed: it carries most
of the sentiment, and nothing else could stand in for it.

What is left as the graph computed it: `fused_score` (the fusion network's own score),
leave-one-out `contribution_<m>` and the pairwise interactions, which describe the
network before the weights. `trust_<m>` is each weight.
"""
from __future__ import annotations

import numpy as np

from model.config import SCORE_RANGE
from model.metrics import UNEXPECTED_PERCENTILE

WEIGHED = ("audio", "visual")
# Chosen on validation data only (`python -m export.ship.trust_sweep`, export/README.md): from
# 1 to 5 the unusual voices' pass-through falls by half or more and ordinary voices' by a tenth,
# for 0.012 MAE on the validation tuples (whose targets take every voice at its word).
FULL_TRUST_PERCENTILE = UNEXPECTED_PERCENTILE


def trust_weights(outputs: dict[str, np.ndarray], text_present: np.ndarray,
                  full_trust_percentile: float = FULL_TRUST_PERCENTILE) -> dict[str, np.ndarray]:
    """Per weighed modality the graph has, a weight in [0, 1] per clip. A diagnostic without
    stored quantiles (NaN percentile) gives no evidence either way."""
    weights = {}
    for m in WEIGHED:
        if f"shapley_{m}" not in outputs:
            continue
        evidence = [outputs[f"cpc_{m}_percentile"]]
        if f"ba_text_{m}_percentile" in outputs:
            evidence.append(np.where(text_present, outputs[f"ba_text_{m}_percentile"], np.nan))
        lowest = np.fmin.reduce(np.stack(evidence).astype(np.float64), axis=0)
        weights[m] = np.where(np.isnan(lowest), 1.0, np.clip(lowest / full_trust_percentile, 0.0, 1.0)).astype(np.float32)
    return weights


def apply_trust(outputs: dict[str, np.ndarray], text_present: np.ndarray,
                full_trust_percentile: float = FULL_TRUST_PERCENTILE) -> dict[str, np.ndarray]:
    """The graph's outputs with the score and the Shapley values weighed (see the module's
    docstring); the graph's own score is kept as `fused_score`."""
    if "score" not in outputs or "fused_score" in outputs:
        return outputs
    out = dict(outputs)
    out["fused_score"] = outputs["score"]
    score = outputs["score"].astype(np.float64)
    for m, w in trust_weights(outputs, text_present, full_trust_percentile).items():
        score = score - (1.0 - w) * outputs[f"shapley_{m}"]
        out[f"shapley_{m}"] = (w * outputs[f"shapley_{m}"]).astype(np.float32)
        out[f"trust_{m}"] = w
    out["score"] = np.clip(score, -SCORE_RANGE, SCORE_RANGE).astype(np.float32)
    return out
