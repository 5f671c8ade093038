"""Choose where trust is full (export/trust.py), on validation data only.

    python -m export.ship.trust_sweep [--model-dir weights/mmim-clip] [--work-dir runs/ship] [--out F]

For each candidate percentile P (trust w = clip(p / P, 0, 1)), on the build's 400 validation
tuples (`export.ship` recipe, corpora cached under --work-dir):
- the served score's MAE against the tuples' targets, beside the fusion network's own;
- the pass-through (reliability.pass_through) of the tuples with their voice swapped for
  ordinary validation voices (RAVDESS valid actors, plain English valid speakers) and for
  unusual ones the evaluation never uses: the *train* speakers of speech/foreign, espeak-ng
  voices and sentences other than the evaluation's, and RAVDESS valid clips played backwards
  or under white noise at -5 dB;
- the voice on RAVDESS valid actors (Corr), alone and with its own sentence as the words.
The test splits and the evaluation's own pools are not read.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from model.metrics import sentiment_metrics

from ..runtime import OnnxModel
from ..samples import clip_sample
from ..trust import apply_trust
from .reliability import NOISE_SNR_DB, pass_through

CANDIDATES = (1.0, 2.0, 5.0, 10.0, 20.0)
# Voices and sentences that the evaluation's espeak-ng pool (reliability.SYNTHETIC_*) does not use.
SWEEP_SENTENCES = ("The train leaves from the second platform.", "She put the books back on the shelf.",
                   "It rained for most of the afternoon.")
SWEEP_VOICES = (("en-gb", 40), ("fr", 50), ("pt", 60), ("ms", 50))


def _raw(runtime, samples) -> dict[str, np.ndarray]:
    """The graph's outputs before trust."""
    parts = [runtime.run(runtime.collate(samples[i : i + 64])) for i in range(0, len(samples), 64)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def validation_pools(frontend, root: Path, work: Path, clean: dict) -> dict[str, list[np.ndarray]]:
    """Unusual voices the evaluation never uses (see the module's docstring), as features."""
    from model.data.audio_conditions import add_noise
    from model.features.bench.media import speech

    from .corpora import neutral_voice_corpus, ravdess_16k

    foreign = neutral_voice_corpus("other_languages", root, frontend, work / "other_languages_features.npz", clean)
    backwards = neutral_voice_corpus("backwards", root, frontend, work / "backwards_features.npz", clean)
    rng = np.random.default_rng(1)
    noisy = [frontend.audio_features(add_noise(ravdess_16k(root, v["file"]), NOISE_SNR_DB, "white", rng))[0]
             for v in clean["valid"][::4]]
    synthetic = [frontend.audio_features(speech(s, voice=v, pitch=p))[0] for s in SWEEP_SENTENCES for v, p in SWEEP_VOICES]
    return {"other languages, train speakers": [v["features"] for v in foreign["train"]],
            "espeak-ng, other voices and sentences": synthetic,
            "RAVDESS valid, backwards": [v["features"] for v in backwards["valid"]],
            f"RAVDESS valid, white noise at {NOISE_SNR_DB:g} dB": noisy}


def sweep(runtime, tuples: list[dict], pools: dict[str, list[np.ndarray]], voices_alone: list[dict],
          own_words: dict[str, str]) -> dict:
    """own_words: each RAVDESS file's sentence, read with its voice (the app's case of an acted
    clip whose words are neutral)."""
    labels = np.array([t["label"] for t in tuples])
    own = _raw(runtime, [clip_sample(t["text"], t["label"], t["voice"]["features"], t["face"]["features"]) for t in tuples])
    without = _raw(runtime, [clip_sample(t["text"], t["label"], None, t["face"]["features"]) for t in tuples])
    empty = _raw(runtime, [clip_sample()])
    swapped = {}
    rng = np.random.default_rng(0)
    for name, voices in pools.items():
        voices = [x for x in voices if len(x)]
        drawn = [voices[i] for i in rng.integers(0, len(voices), len(tuples))]
        swapped[name] = (_raw(runtime, [clip_sample(t["text"], t["label"], x, t["face"]["features"]) for t, x in zip(tuples, drawn)]),
                         _raw(runtime, [clip_sample(audio=x) for x in drawn]), len(voices))
    alone = _raw(runtime, [clip_sample(label=v["valence"], audio=v["features"]) for v in voices_alone if v["voice_found"]])
    alone_labels = np.array([v["valence"] for v in voices_alone if v["voice_found"]])
    worded = _raw(runtime, [clip_sample(own_words[v["file"]] + ".", v["valence"], v["features"])
                            for v in voices_alone if v["voice_found"]])

    def served(raw, p):
        return apply_trust(raw, p)["score"]

    rows = {}
    for p in CANDIDATES:
        base, empty_score = served(without, p), float(served(empty, p)[0])
        row = {"tuples_valid_mae": sentiment_metrics(served(own, p), labels)["mae"],
               "voice_alone_ravdess_valid_corr": sentiment_metrics(served(alone, p), alone_labels)["corr"],
               "voice_with_own_words_ravdess_valid_corr": sentiment_metrics(served(worded, p), alone_labels)["corr"],
               "pass_through": {}, "distrusted_share": {}}
        for name, (raw, raw_alone, _) in swapped.items():
            weighed = apply_trust(raw, p)
            row["pass_through"][name] = pass_through(weighed["score"], base, served(raw_alone, p) - empty_score)
            row["distrusted_share"][name] = float((weighed["trust_audio"] < 1).mean())
        rows[str(p)] = row
    fused = {"tuples_valid_mae": sentiment_metrics(own["score"], labels)["mae"],
             "voice_with_own_words_ravdess_valid_corr": sentiment_metrics(worded["score"], alone_labels)["corr"],
             "pass_through": {name: pass_through(raw["score"], without["score"], raw_alone["score"] - empty["score"][0])
                              for name, (raw, raw_alone, _) in swapped.items()}}
    return {"tuples": len(tuples), "pools": {name: n for name, (_, _, n) in swapped.items()},
            "fusion_network_alone": fused, "candidates": rows}


def main(argv=None) -> None:
    from model.features import FrontEnd
    from model.files import data_root

    from .recipe import ShipConfig, build_corpora, folder_recipe

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default="weights/mmim-clip")
    parser.add_argument("--work-dir", default="runs/ship")
    parser.add_argument("--out", default="model/experiments/results/trust_sweep.json")
    parser.add_argument("--num-threads", type=int, default=1)
    args = parser.parse_args(argv)
    root, work = data_root(), Path(args.work_dir)
    frontend = FrontEnd()
    recipe = folder_recipe(ShipConfig(work_dir=str(work), out=args.model_dir, num_threads=args.num_threads))
    corpora = build_corpora(recipe, root, work, frontend)
    pools = {"RAVDESS valid": [v["features"] for v in corpora.clean["valid"]],
             "plain English, valid speakers": [v["features"] for v in corpora.plain["valid"]],
             **validation_pools(frontend, root, work, corpora.clean)}
    runtime = OnnxModel(args.model_dir, providers=["CPUExecutionProvider"], threads=args.num_threads)
    statements = {r["file"]: r["statement"] for r in csv.DictReader(open(root / "ravdess" / "metadata.csv", newline=""))}
    report = sweep(runtime, corpora.tuples["valid"], pools, corpora.clean["valid"], statements)
    report["command"] = "python -m export.ship.trust_sweep"
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
