"""How much affect do voice features carry? A speaker-independent linear probe on RAVDESS.

    python -m model.features.bench.voice_probe [--features egemaps whisper_tiny whisper_base] [--out probe.json]

Each clip becomes one vector: eGeMAPSv02 functionals (88-d, openSMILE), or the mean and
standard deviation of a Whisper encoder's frames over the speech the VAD keeps (the same
frames the front end pools into the audio stream). A standardised logistic regression
then predicts, with balanced accuracy:
- the 8 emotions;
- valence: positive (happy, calm, surprised) vs negative (sad, angry, fearful, disgust),
  neutral left out;
- arousal: high (angry, happy, fearful, surprised) vs low (neutral, calm, sad, disgust).
Two protocols, both speaker-independent: GroupKFold over the 24 actors (6 folds), and
the shipped model's split (train on actors 1-21, test on the held-out actors 22-24).
"""
from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

import numpy as np

from model.cli import emit_json

log = logging.getLogger(__name__)
POSITIVE = {"happy", "calm", "surprised"}
NEGATIVE = {"sad", "angry", "fearful", "disgust"}
HIGH_AROUSAL = {"angry", "happy", "fearful", "surprised"}
FEATURES = ("egemaps", "whisper_tiny", "whisper_base")
HELD_OUT_ACTORS = (22, 23, 24)


def featurizer(name: str):
    """signal (16 kHz float32) -> one vector per clip."""
    if name == "egemaps":
        import opensmile

        smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals)
        return lambda x: smile.process_signal(x, 16000).to_numpy(np.float32)[0]
    from model.features.frontend import transcriber

    model = transcriber({"whisper_tiny": "tiny.en", "whisper_base": "base"}[name])

    def pooled(x: np.ndarray) -> np.ndarray:
        frames = model.analyse(x, transcribe=False).frames
        if not len(frames):
            return np.zeros(2 * model.dim, np.float32)
        return np.concatenate([frames.mean(0), frames.std(0)])

    return pooled


def tasks(emotions: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """task -> (row mask, labels)."""
    e = np.array(emotions)
    valence = np.isin(e, list(POSITIVE)) | np.isin(e, list(NEGATIVE))
    return {
        "emotion_8": (np.ones(len(e), bool), e),
        "valence_2": (valence, np.isin(e, list(POSITIVE)).astype(int)),
        "arousal_2": (np.ones(len(e), bool), np.isin(e, list(HIGH_AROUSAL)).astype(int)),
    }


def probe(x: np.ndarray, y: np.ndarray, groups: np.ndarray, held_out: np.ndarray | None = None, folds: int = 6) -> dict:
    """Balanced accuracy of a standardised logistic regression: GroupKFold mean, and on
    `held_out` rows when given (trained on the rest)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def fit_score(train, test) -> float:
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
        clf.fit(x[train], y[train])
        return float(balanced_accuracy_score(y[test], clf.predict(x[test])))

    n_folds = min(folds, len(set(groups)))
    scores = [fit_score(tr, te) for tr, te in GroupKFold(n_splits=n_folds).split(x, y, groups)]
    out = {"group_kfold": round(float(np.mean(scores)), 4), "folds": n_folds}
    if held_out is not None and held_out.any():
        out["held_out"] = round(fit_score(~held_out, held_out), 4)
    return out


def ravdess(data: Path, limit_per_actor: int = 0):
    import soundfile as sf

    rows = list(csv.DictReader(open(data / "ravdess" / "metadata.csv", newline="")))
    if limit_per_actor:
        by_actor: dict[str, list] = {}
        for r in rows:
            by_actor.setdefault(r["actor"], []).append(r)
        rows = [r for rs in by_actor.values() for r in rs[::max(1, len(rs) // limit_per_actor)][:limit_per_actor]]
    signals = [sf.read(data / "ravdess" / r["file"], dtype="float32")[0] for r in rows]
    return signals, [r["emotion"] for r in rows], np.array([int(r["actor"]) for r in rows])


def main(argv=None) -> None:
    from model.files import data_root

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", nargs="+", default=list(FEATURES), choices=FEATURES)
    parser.add_argument("--limit-per-actor", type=int, default=0, help="clips per actor (0 = all 60)")
    parser.add_argument("--data", type=Path, default=data_root())
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    signals, emotions, actors = ravdess(args.data, args.limit_per_actor)
    held_out = np.isin(actors, HELD_OUT_ACTORS)
    result = {"clips": len(signals), "actors": int(len(set(actors))), "held_out_actors": list(HELD_OUT_ACTORS), "results": {}}
    for name in args.features:
        f = featurizer(name)
        x = np.stack([f(s) for s in signals])
        result["results"][name] = {task: probe(x[rows], y[rows], actors[rows], held_out[rows])
                                   for task, (rows, y) in tasks(emotions).items()}
        log.info("%s: %s", name, result["results"][name])
    emit_json(result, args.out)


if __name__ == "__main__":
    main()
