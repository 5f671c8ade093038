"""How much of the voice and the face the score keeps: less when they are unlike training.

The fusion network was trained on RAVDESS voices, plain English speech and FER faces. On a
voice it never saw the like of (another language, a synthetic voice, speech under loud
noise) it still passes on about a fifth of whatever that voice scores alone
(export/ship/reliability.py): it has no way to know it is guessing. Its CPC diagnostic
does know: the fused representation no longer picks such a voice out of a bank of training
clips as well as it picks out training voices.

So each non-verbal modality m gets a trust weight from its CPC fusion -> m percentile p_m
among the training clips,

    w_m = clip(p_m / FULL_TRUST_PERCENTILE, 0, 1),

1 from the 5th percentile up (below it the app already calls a clip "less expected than most
training clips") and 0 below every training clip's value, and the score keeps w_m of m's
exact Shapley value:

    score = fused score - sum_m (1 - w_m) * shapley_m,    shapley_m <- w_m * shapley_m.

The Shapley values still add up to score - shapley_baseline, and a modality at weight 0
leaves the score where the training-mean version of it would. The text is never weighed: it
carries most of the sentiment, and nothing else could stand in for it.

BA text -> m is not evidence here. It measures how expected the voice is for these words, and
it falls when they disagree: RAVDESS voices reading their own neutral sentences sit at a
median 0.8th percentile of BA (validation actors), and trusting BA cut the voice's Corr there
from 0.63 to 0.32. A voice that disagrees with the words is information, not noise.

What is left as the graph computed it: `fused_score` (the fusion network's own score),
leave-one-out `contribution_<m>` and the pairwise interactions, which describe the
network before the weights. `trust_<m>` is each weight.
"""
from __future__ import annotations

import numpy as np

from model.config import SCORE_RANGE
from model.metrics import UNEXPECTED_PERCENTILE

WEIGHED = ("audio", "visual")
# Chosen on validation data only (`python -m export.ship.trust_sweep`, export/README.md): at 5
# espeak-ng voices pass on half as much as before and ordinary ones 2-4 % less, for 0.006 MAE on
# the validation tuples (whose targets take every voice at its word); 10 and 20 cost more and
# weighed the unusual voices no further.
FULL_TRUST_PERCENTILE = UNEXPECTED_PERCENTILE


def trust_weights(outputs: dict[str, np.ndarray], full_trust_percentile: float = FULL_TRUST_PERCENTILE) -> dict[str, np.ndarray]:
    """Per weighed modality the graph has, a weight in [0, 1] per clip. A model without stored
    quantiles (NaN percentile) gives no evidence either way."""
    weights = {}
    for m in WEIGHED:
        if f"shapley_{m}" not in outputs:
            continue
        p = outputs[f"cpc_{m}_percentile"].astype(np.float64)
        weights[m] = np.where(np.isnan(p), 1.0, np.clip(p / full_trust_percentile, 0.0, 1.0)).astype(np.float32)
    return weights


def apply_trust(outputs: dict[str, np.ndarray], full_trust_percentile: float = FULL_TRUST_PERCENTILE) -> dict[str, np.ndarray]:
    """The graph's outputs with the score and the Shapley values weighed (see the module's
    docstring); the graph's own score is kept as `fused_score`."""
    if "score" not in outputs or "fused_score" in outputs:
        return outputs
    out = dict(outputs)
    out["fused_score"] = outputs["score"]
    score = outputs["score"].astype(np.float64)
    for m, w in trust_weights(outputs, full_trust_percentile).items():
        score = score - (1.0 - w) * outputs[f"shapley_{m}"]
        out[f"shapley_{m}"] = (w * outputs[f"shapley_{m}"]).astype(np.float32)
        out[f"trust_{m}"] = w
    out["score"] = np.clip(score, -SCORE_RANGE, SCORE_RANGE).astype(np.float32)
    return out
