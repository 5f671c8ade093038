"""The real unimodal corpora the clip model is built from, each run through the app's front end
and cached: MOSI and SST text, RAVDESS voices, FER2013 faces (as short jittered clips)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model.data import load_mosi
from model.data.audio_conditions import random_conditions
from model.data.featurized import SPLITS
from model.data.samples import spread
from model.features.fer import EXPRESSIONS, load_fer
from model.features.frontend import mono_16k
from model.files import atomic_write

# Valence in [-3, 3] per RAVDESS emotion (normal intensity); strong intensity x1.25.
VOICE_VALENCE = {
    "neutral": 0.0, "calm": 0.5, "happy": 2.0, "surprised": 1.0,
    "sad": -1.2, "fearful": -1.2, "disgust": -1.8, "angry": -2.0,
}
STRONG = 1.25
# Valence per FER2013 expression.
FACE_VALENCE = {
    "neutral": 0.0, "happy": 2.0, "surprise": 1.0,
    "sad": -1.5, "fear": -1.2, "disgust": -1.8, "angry": -2.0,
}

def ravdess_16k(data_root: Path, file: str) -> np.ndarray:
    """A RAVDESS clip as 16 kHz mono float32."""
    import soundfile

    return mono_16k(*soundfile.read(data_root / "ravdess" / file, dtype="float32"))


def text_corpus(data_root: Path) -> dict[str, list[tuple[str, str, float]]]:
    """(source, text, label) per split: MOSI standard folds and SST sentences."""
    out = {s: [] for s in SPLITS}
    for split, samples in load_mosi(data_root / "mosi", "mosi-std").items():
        out[split] += [("mosi", s.text, s.label) for s in samples]
    with open(data_root / "text" / "sst.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out[row["split"]].append(("sst", row["text"], float(row["label_pm3"])))
    return out


def voice_corpus(data_root: Path, frontend, cache: Path, per_split: int = 0) -> dict[str, list[dict]]:
    """RAVDESS speech through the front end's audio path: features and valence per split
    (per_split > 0: that many clips of each split, evenly spaced over its list)."""
    import soundfile

    if not cache.is_file():
        rows = list(csv.DictReader(open(data_root / "ravdess" / "metadata.csv", newline="")))
        if per_split:
            rows = [r for s in SPLITS for r in spread([r for r in rows if r["split"] == s], per_split)]
        feats, meta = [], []
        for row in tqdm(rows, desc="RAVDESS audio"):
            signal, rate = soundfile.read(data_root / "ravdess" / row["file"], dtype="float32")
            x, quality = frontend.audio_features(signal, rate)
            valence = VOICE_VALENCE[row["emotion"]] * (STRONG if row["intensity"] == "strong" else 1.0)
            feats.append(x)
            meta.append({"id": Path(row["file"]).stem, "file": row["file"], "split": row["split"],
                         "emotion": row["emotion"], "valence": valence, "voice_found": bool(len(x)),
                         "voiced_share": quality.get("voiced_share", 0.0)})
        save_ragged(cache, feats, meta)
    return by_split(*load_ragged(cache))


def conditioned_voice_corpus(data_root: Path, frontend, cache: Path, clean: dict[str, list[dict]], seed: int) -> dict[str, list[dict]]:
    """One copy of every RAVDESS clip in `clean` under a random chain of real recording
    conditions (model/data/audio_conditions.py), with the clean clip's valence; the chain is
    kept in `conditions`. Test copies are for evaluation only."""
    if not cache.is_file():
        rng = np.random.default_rng(seed)
        feats, meta = [], []
        for v in tqdm([v for s in SPLITS for v in clean[s]], desc="RAVDESS under real conditions"):
            signal, names = random_conditions(ravdess_16k(data_root, v["file"]), rng)
            x, quality = frontend.audio_features(signal)
            feats.append(x)
            meta.append({**{k: w for k, w in v.items() if k != "features"}, "id": v["id"] + "+" + "+".join(names),
                         "conditions": names, "voice_found": bool(len(x)), "voiced_share": quality.get("voiced_share", 0.0)})
        save_ragged(cache, feats, meta)
    return by_split(*load_ragged(cache))


def plain_speech_corpus(data_root: Path, frontend, cache: Path, per_split: int = 0) -> dict[str, list[dict]]:
    """Real, non-acted English speech (shared/data/speech/english) through the audio path,
    valence 0: the anchor of "neutral" for the voice, split by speaker as the data ships."""
    from model.features.decode import decode

    if not cache.is_file():
        folder = data_root / "speech" / "english"
        rows = list(csv.DictReader(open(folder / "metadata.csv", newline="", encoding="utf-8")))
        if per_split:
            rows = [r for s in SPLITS for r in spread([r for r in rows if r["split"] == s], per_split)]
        feats, meta = [], []
        for row in tqdm(rows, desc="plain English speech"):
            x, quality = frontend.audio_features(decode(folder / row["file"], want_video=False).audio)
            feats.append(x)
            meta.append({"id": "speech:" + row["file"], "file": row["file"], "split": row["split"], "emotion": "plain",
                         "valence": 0.0, "voice_found": bool(len(x)), "voiced_share": quality.get("voiced_share", 0.0)})
        save_ragged(cache, feats, meta)
    return by_split(*load_ragged(cache))


# Voices at valence 0 that a build may add beside RAVDESS and plain English (ShipConfig.neutral_voices).
NEUTRAL_VOICES = ("other_languages", "backwards")
# One RAVDESS clip in this many is played backwards: about as many voices as the plain speech,
# so that they do not crowd the neutral valence bin.
BACKWARDS_EVERY = 4


def neutral_voice_corpus(kind: str, data_root: Path, frontend, cache: Path, clean: dict[str, list[dict]],
                         per_split: int = 0) -> dict[str, list[dict]]:
    """Voices whose sentiment the model should not trust, at valence 0:
    - "other_languages": real plain speech in other languages (shared/data/speech/foreign), by
      its speaker split;
    - "backwards": one in BACKWARDS_EVERY RAVDESS clips of `clean` played backwards (its actor
      split): the voice quality of acted emotion with none of the speech."""
    from model.features.decode import decode

    if kind not in NEUTRAL_VOICES:
        raise ValueError(f"unknown neutral voices {kind!r}: choose from {NEUTRAL_VOICES}")
    if not cache.is_file():
        if kind == "other_languages":
            folder = data_root / "speech" / "foreign"
            rows = list(csv.DictReader(open(folder / "metadata.csv", newline="", encoding="utf-8")))
            if per_split:
                rows = [r for s in SPLITS for r in spread([r for r in rows if r["split"] == s], per_split)]
            items = [(row["file"], row["split"], lambda row=row: decode(folder / row["file"], want_video=False).audio)
                     for row in rows]
        else:
            items = [(v["file"], v["split"], lambda v=v: ravdess_16k(data_root, v["file"])[::-1].copy())
                     for s in SPLITS for v in clean[s][::BACKWARDS_EVERY]]
        feats, meta = [], []
        for file, split, load in tqdm(items, desc=f"{kind} voices"):
            x, quality = frontend.audio_features(load())
            feats.append(x)
            meta.append({"id": f"{kind}:{file}", "file": file, "split": split, "emotion": kind, "valence": 0.0,
                         "voice_found": bool(len(x)), "voiced_share": quality.get("voiced_share", 0.0)})
        save_ragged(cache, feats, meta)
    return by_split(*load_ragged(cache))


def face_clip(face: np.ndarray, scale: int, frames: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A 48x48 grey face as a short RGB clip: upscaled, framed, jittered per frame
    (shift, brightness), so the visual path sees what a webcam would give it."""
    import cv2

    size = face.shape[0] * scale
    big = cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC)
    border = size // 2
    clip = []
    for _ in range(frames):
        dx, dy = rng.integers(-scale * 2, scale * 2 + 1, size=2)
        canvas = np.full((size + 2 * border, size + 2 * border), int(big.mean()), np.uint8)
        y0, x0 = border + dy, border + dx
        canvas[y0 : y0 + size, x0 : x0 + size] = big
        canvas = np.clip(canvas.astype(np.float32) * rng.uniform(0.85, 1.15), 0, 255).astype(np.uint8)
        clip.append(np.repeat(canvas[:, :, None], 3, axis=2))
    return clip


def face_corpus(cfg, data_root: Path, frontend, cache: Path) -> dict[str, list[dict]]:
    """FER2013 faces, as short clips through the front end's visual path.

    Faces in which the detector finds no face are dropped (and counted): in the
    app such a clip has no visual modality at all.
    """
    if not cache.is_file():
        fer = load_fer(data_root / "faces")
        rng = np.random.default_rng(cfg.seed)
        per_split = {"train": cfg.faces_train, "valid": cfg.faces_valid, "test": cfg.faces_test}
        feats, meta = [], []
        for split, n in per_split.items():
            pool = np.flatnonzero((fer["split"] == split) & (fer["blank"] == 0))
            # Balanced over expressions as far as each class allows (disgust is rare).
            chosen = np.concatenate([
                rng.permutation(pool[fer["y"][pool] == k])[: n // len(EXPRESSIONS)] for k in range(len(EXPRESSIONS))
            ])
            for i in tqdm(chosen, desc=f"FER {split} faces"):
                x, quality = frontend.visual_features(face_clip(fer["x"][i], cfg.face_scale, cfg.face_frames, rng))
                expression = EXPRESSIONS[fer["y"][i]]
                feats.append(x)
                meta.append({"id": f"fer{i}", "split": split, "expression": expression,
                             "valence": FACE_VALENCE[expression], "face_found": bool(len(x))})
        save_ragged(cache, feats, meta)
    feats, meta = load_ragged(cache)
    return by_split(feats, meta)


def save_ragged(path: Path, arrays: list[np.ndarray], meta: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lengths = np.array([len(a) for a in arrays])
    dim = arrays[0].shape[1]
    stacked = np.concatenate(arrays) if lengths.sum() else np.zeros((0, dim), np.float32)
    atomic_write(path, lambda tmp: np.savez(tmp, frames=stacked, lengths=lengths, meta=np.array(json.dumps(meta))))


def load_ragged(path: Path) -> tuple[list[np.ndarray], list[dict]]:
    with np.load(path) as z:
        # Each z[...] access reads the whole array again: read it once.
        frames, lengths, meta = z["frames"], z["lengths"], json.loads(str(z["meta"]))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return [frames[a:b] for a, b in zip(offsets[:-1], offsets[1:])], meta


def by_split(arrays: list[np.ndarray], meta: list[dict]) -> dict[str, list[dict]]:
    out = {s: [] for s in SPLITS}
    for x, m in zip(arrays, meta):
        out[m["split"]].append({**m, "features": x})
    return out
