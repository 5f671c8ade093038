"""From the graph's outputs for one clip to what a person reads: label, bin, flags, one line.

Nothing here looks at features; it only reads the score, the per-modality
diagnostics and the front end's quality figures, so every rule is visible below.
"""
from __future__ import annotations

from model.metrics import OUTSIDE_PERCENTILE, UNEXPECTED_PERCENTILE

ABSENT = "absent"  # shown instead of a number for a modality the clip does not have
NAMES = {"text": "the words", "audio": "the voice", "visual": "the face"}
BIN7 = {
    -3: "strongly negative", -2: "negative", -1: "weakly negative", 0: "neutral",
    1: "weakly positive", 2: "positive", 3: "strongly positive",
}
# A Shapley value (the modality's share of score - baseline) smaller than this, in score
# units on [-3, 3], counts as "no pull either way".
MIN_PULL = 0.1
# Two modalities "disagree" only when the weaker pull is at least this share of the stronger.
DISAGREE_SHARE = 0.25
# Below UNEXPECTED_PERCENTILE an MI diagnostic is "less expected than most training clips";
# below OUTSIDE_PERCENTILE "outside what the model saw in training" (both in model/metrics.py).
# Quality thresholds behind the flags.
LOW_FACE_SHARE = 0.3
LOW_VOICED_SHARE = 0.2


def bin7(score: float) -> int:
    """Acc-7 class: clip to [-3, 3] and round, as in model.metrics."""
    return int(round(min(3.0, max(-3.0, score))))


def label(score: float) -> str:
    """negative / neutral / positive from the 7-class bin, so the two never contradict."""
    b = bin7(score)
    return "negative" if b < 0 else "positive" if b > 0 else "neutral"


def _direction(value: float) -> str:
    return "positive" if value > 0 else "negative"


def _says(m: str, plural: str, singular: str) -> str:
    """Subject plus verb with agreement: "the words pull", "the voice pulls"."""
    return f"{NAMES[m]} {plural if m == 'text' else singular}"


def outside_training(percentile) -> bool:
    return isinstance(percentile, float) and percentile < OUTSIDE_PERCENTILE


def pull(d: dict):
    """The modality's pull on the score: its Shapley value, or leave-one-out for older models."""
    for key in ("shapley", "contribution"):
        if isinstance(d.get(key), float):
            return d[key]
    return None


def summary(score: float, diagnostics: dict[str, dict]) -> str:
    """One plain-language line from the Shapley values' signs and sizes and the BA percentiles.

    Rules, in order:
    1. One modality present: the score rests on it alone.
    2. Among present modalities whose |Shapley value| >= MIN_PULL, take the strongest
       pull each way; if both exist and the weaker is >= DISAGREE_SHARE of the stronger,
       they disagree ("the voice and the words disagree ...").
    3. Otherwise, if some pulls are big enough, the strongest one drives the score, and
       the others that pull the same way agree with it.
    4. Otherwise no modality moves the score much from the training-mean baseline.
    Then, for each non-verbal modality whose BA text -> m is at a low percentile of the
    training clips' values, say so: below OUTSIDE_PERCENTILE it is outside what the
    model saw in training; below UNEXPECTED_PERCENTILE it is less expected for these
    words than (100 - p) % of training clips.
    """
    present = [m for m, d in diagnostics.items() if d["present"]]
    pulls = {m: pull(diagnostics[m]) for m in present if pull(diagnostics[m]) is not None}
    strong = {m: c for m, c in pulls.items() if abs(c) >= MIN_PULL}
    up = max((m for m in strong if strong[m] > 0), key=lambda m: strong[m], default=None)
    down = min((m for m in strong if strong[m] < 0), key=lambda m: strong[m], default=None)
    if len(present) == 1:
        line = f"Only {NAMES[present[0]]} {'were' if present[0] == 'text' else 'was'} available; the score rests on {'them' if present[0] == 'text' else 'it'} alone."
    elif up and down and min(strong[up], -strong[down]) >= DISAGREE_SHARE * max(strong[up], -strong[down]):
        line = (
            f"{NAMES[up].capitalize()} and {NAMES[down]} disagree: {_says(up, 'pull', 'pulls')} towards positive "
            f"({strong[up]:+.2f}), {_says(down, 'pull', 'pulls')} towards negative ({strong[down]:+.2f})."
        )
    elif strong:
        lead = max(strong, key=lambda m: abs(strong[m]))
        same = [m for m in strong if m != lead and (strong[m] > 0) == (strong[lead] > 0)]
        line = f"{_says(lead, 'drive', 'drives').capitalize()} the score {_direction(strong[lead])} ({strong[lead]:+.2f})"
        line += f", and {' and '.join(NAMES[m] for m in same)} {'agree' if len(same) > 1 or same == ['text'] else 'agrees'}." if same else "."
    else:
        line = f"No modality moves the score by {MIN_PULL} or more from the model's baseline."
    for m, d in diagnostics.items():
        p = d.get("ba_percentile")
        if not isinstance(p, float) or p >= UNEXPECTED_PERCENTILE:
            continue
        if p < OUTSIDE_PERCENTILE:
            line += (f" {NAMES[m].capitalize()} is outside what the model saw in training for such words "
                     "(less expected than 99 % of training clips).")
        else:
            line += f" {NAMES[m].capitalize()} is less expected for these words than {100 - p:.0f} % of training clips."
    return line


def flags(diagnostics: dict[str, dict], quality: dict, text_source: str) -> list[str]:
    """Presence and quality warnings, each a short sentence."""
    out = []
    for m, d in diagnostics.items():
        if not d["present"]:
            reason = quality.get(f"{m}_absent_reason")
            out.append(f"{m} absent" + (f": {reason}" if reason else ""))
    if text_source == "automatic":
        out.append("transcript is automatic (speech recogniser); it may be wrong")
    face = quality.get("face_share")
    if diagnostics.get("visual", {}).get("present") and isinstance(face, (int, float)) and face < LOW_FACE_SHARE:
        out.append(f"a face was found in only {face:.0%} of the frames")
    voiced = quality.get("voiced_share")
    if diagnostics.get("audio", {}).get("present") and isinstance(voiced, (int, float)) and voiced < LOW_VOICED_SHARE:
        out.append(f"only {voiced:.0%} of the audio is voiced speech")
    for m, d in diagnostics.items():
        trust = d.get("trust")
        if d["present"] and isinstance(trust, float) and trust < 1.0:
            kept = "none" if trust == 0.0 else f"{trust:.0%}"
            out.append(f"{NAMES[m]} is unlike most training clips: the score keeps {kept} of its pull")
    if quality.get("faces_max", 0) and quality.get("faces_max", 0) > 1:
        out.append(f"up to {quality['faces_max']} faces in a frame; the largest one was used")
    if quality.get("text_truncated"):
        out.append("the text was truncated")
    return out

