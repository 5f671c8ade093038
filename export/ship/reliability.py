"""Does the fusion lean less on a voice that lies outside what it saw in training?

Two measurements on the test tuples, through ONNX Runtime:
- `voice_share_by_familiarity`: the tuples as built, grouped by the MI diagnostics' verdict
  on their voice (outside training or not);
- `unusual_voice_metrics`: the same tuples with their voice swapped for one from a pool of
  unusual voices (speech in other languages, synthetic speech, speech played backwards,
  speech under noise louder than itself), beside pools of ordinary voices.

A voice's share of the |Shapley| total also falls when the voice simply says less (plain
speech scores near 0 alone), so the second measurement also reports the pass-through: the
slope of the voice's effect on the fused score (with the voice against without it) on what
the same voice scores alone. A fusion that trusts unusual voices less passes less of them on.
Both are measured as served (the voice and the face weighed by trust, export/trust.py) and as
the fusion network alone gives them, in the same run.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from model.config import MODALITIES
from model.metrics import OUTSIDE_PERCENTILE

from ..samples import clip_sample

# Unusual voices made by voice tools, not recorded: espeak-ng voices (several accents and
# languages' letter-to-sound rules) reading plain sentences.
SYNTHETIC_SENTENCES = (
    "I went to the shop this morning to buy some bread.",
    "The meeting starts at ten and ends at noon.",
    "Please close the window before you leave.",
    "We drove along the coast for most of the day.",
)
SYNTHETIC_VOICES = (("en", 50), ("en-us", 30), ("en+f3", 70), ("id", 50), ("de", 50), ("es", 40))
NOISE_SNR_DB = -5.0  # below the training conditions' 0-25 dB (model/data/audio_conditions.py)


def voice_share(outputs: dict[str, np.ndarray]) -> np.ndarray:
    """The voice's share of the |Shapley| total, per clip."""
    total = sum(np.abs(outputs[f"shapley_{m}"]) for m in MODALITIES)
    return np.abs(outputs["shapley_audio"]) / np.maximum(total, 1e-9)


def outside_training(outputs: dict[str, np.ndarray], below: float = OUTSIDE_PERCENTILE) -> np.ndarray:
    """The diagnostics' verdict on each clip's voice: BA text->voice or CPC voice under `below`."""
    return (outputs["ba_text_audio_percentile"] < below) | (outputs["cpc_audio_percentile"] < below)


def voice_share_by_familiarity(outputs: dict[str, np.ndarray], without_voice: np.ndarray, labels: np.ndarray,
                               below: float = OUTSIDE_PERCENTILE) -> dict:
    """On tuples whose voice is outside training and on the rest: the voice's share of the
    |Shapley| total, and the MAE with the voice and without it (whether trusting it less would
    have helped)."""
    share, outside = voice_share(outputs), outside_training(outputs, below)

    def group(rows):
        if not rows.any():
            return {"n": 0, "voice_share": None, "mae_with_voice": None, "mae_without_voice": None}
        return {"n": int(rows.sum()), "voice_share": float(share[rows].mean()),
                "mae_with_voice": float(np.abs(outputs["score"][rows] - labels[rows]).mean()),
                "mae_without_voice": float(np.abs(without_voice[rows] - labels[rows]).mean())}

    return {"outside": group(outside), "inside": group(~outside)}


def pass_through(fused: np.ndarray, without_voice: np.ndarray, alone: np.ndarray) -> float:
    """Least-squares slope (through 0) of the voice's effect on the fused score on what the voice
    scores alone (both against the score without it): 1 passes the voice on whole, 0 ignores it."""
    effect = fused - without_voice
    return float((effect * alone).sum() / max(float((alone ** 2).sum()), 1e-12))


def scores(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The served score and the fusion network's own, before trust weighed the voice and the
    face (export/trust.py; the same array for a model served without it)."""
    return {"score": outputs["score"], "fused_score": outputs.get("fused_score", outputs["score"])}


def swapped_voice_metrics(runtime, tuples: list[dict], voices: list[np.ndarray], without_voice: dict[str, np.ndarray],
                          empty: dict[str, float], rng: np.random.Generator) -> dict:
    """The tuples with each voice replaced by one drawn from `voices`; the effect and the
    pass-through both as served and as the fusion network alone gives them (`_fused`)."""
    drawn = [voices[i] for i in rng.integers(0, len(voices), len(tuples))]
    outputs = runtime.predict([clip_sample(t["text"], t["label"], x, t["face"]["features"]) for t, x in zip(tuples, drawn)])
    alone_outputs = scores(runtime.predict([clip_sample(audio=x) for x in drawn]))
    share, outside = voice_share(outputs), outside_training(outputs)
    out = {
        "voices": len(voices), "tuples": len(tuples),
        "outside_share": float(outside.mean()),
        "voice_share": float(share.mean()),
        "voice_share_outside": float(share[outside].mean()) if outside.any() else None,
        "voice_share_inside": float(share[~outside].mean()) if (~outside).any() else None,
    }
    if "trust_audio" in outputs:  # how often the served score weighed the voice down (export/trust.py)
        out["trusted_less_share"] = float((outputs["trust_audio"] < 1).mean())
        out["mean_trust"] = float(outputs["trust_audio"].mean())
    with_voice = scores(outputs)
    for key, suffix in (("score", ""), ("fused_score", "_fused")):
        alone = alone_outputs[key] - empty[key]
        out[f"mean_abs_effect{suffix}"] = float(np.abs(with_voice[key] - without_voice[key]).mean())
        out[f"voice_alone_mean{suffix}"] = float(alone.mean())
        out[f"voice_alone_mean_abs{suffix}"] = float(np.abs(alone).mean())
        out[f"pass_through{suffix}"] = pass_through(with_voice[key], without_voice[key], alone)
    return out


def scores_without_voice(runtime, tuples: list[dict]) -> dict[str, np.ndarray]:
    """Each tuple's scores (`scores`) from its words and face alone."""
    return scores(runtime.predict([clip_sample(t["text"], t["label"], None, t["face"]["features"]) for t in tuples]))


def unusual_voice_metrics(runtime, tuples: list[dict], pools: dict[str, list[np.ndarray]],
                          without_voice: dict[str, np.ndarray], seed: int = 0) -> dict:
    """`swapped_voice_metrics` for every pool of voices (features), on the same tuples
    (without_voice: `scores_without_voice` of them)."""
    empty = {k: float(v[0]) for k, v in scores(runtime.predict([clip_sample()])).items()}
    return {name: swapped_voice_metrics(runtime, tuples, [x for x in voices if len(x)], without_voice, empty,
                                        np.random.default_rng(seed))
            for name, voices in pools.items()}


def unusual_voice_pools(frontend, data_root: Path, clean_test: list[dict], per_split: int = 0) -> dict[str, list[np.ndarray]]:
    """Held-out voices unlike any the model was trained on, through the front end's audio path:
    real speech in other languages (the valid and test speakers of shared/data/speech/foreign),
    espeak-ng speech, and the held-out RAVDESS clips played backwards or under white noise at
    NOISE_SNR_DB (per_split > 0: that many of each, for smoke builds)."""
    from model.data.audio_conditions import add_noise
    from model.data.samples import spread
    from model.features.bench.media import speech
    from model.features.decode import decode

    from .corpora import ravdess_16k

    folder = data_root / "speech" / "foreign"
    rows = [r for r in csv.DictReader(open(folder / "metadata.csv", newline="", encoding="utf-8"))
            if r["split"] in ("valid", "test")]
    synthetic = [(s, v, p) for s in SYNTHETIC_SENTENCES for v, p in SYNTHETIC_VOICES]
    if per_split:
        rows, synthetic, clean_test = spread(rows, per_split), spread(synthetic, per_split), spread(clean_test, per_split)
    ravdess = [ravdess_16k(data_root, v["file"]) for v in clean_test]
    rng = np.random.default_rng(0)
    signals = {
        "other languages (real)": [decode(folder / r["file"], want_video=False).audio for r in rows],
        "synthetic (espeak-ng)": [speech(s, voice=v, pitch=p) for s, v, p in synthetic],
        "RAVDESS test, backwards": [x[::-1].copy() for x in ravdess],
        f"RAVDESS test, white noise at {NOISE_SNR_DB:g} dB SNR": [add_noise(x, NOISE_SNR_DB, "white", rng) for x in ravdess],
    }
    return {name: [frontend.audio_features(x)[0] for x in xs] for name, xs in signals.items()}
