"""(text, voice, face) tuples matched across corpora by valence, written as a featurized dataset."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from model.data.featurized import ERROR_COLUMNS, MODALITY_LABEL_COLUMNS, SAMPLE_COLUMNS, feature_path, save_clip, write_csv
from model.data.targets import words_first

# Valence bins that tuples are matched on: polarity and strength.
BIN_EDGES = (-1.5, -0.5, 0.5, 1.5)



def valence_bin(value: float) -> int:
    """0 strongly negative .. 2 neutral .. 4 strongly positive."""
    return int(np.searchsorted(BIN_EDGES, value, side="left"))



def match_tuples(texts, voices, faces, n: int, sst_share: float, rng: np.random.Generator,
                 disagree_share: float = 0.0) -> list[dict]:
    """n (text, voice, face) tuples of one split.

    Texts are drawn first (from SST with probability sst_share). The voice comes from
    the text's valence bin, except with probability disagree_share, when its bin is
    drawn at random among those that have voices; the face likewise, independently.
    Each tuple keeps every modality's valence and its fused target (words_first over
    all three); bins with no voice or no face are skipped.
    """
    bins = range(len(BIN_EDGES) + 1)
    voice_bins = {b: [v for v in voices if v.get("voice_found", True) and valence_bin(v["valence"]) == b] for b in bins}
    face_bins = {b: [f for f in faces if f["face_found"] and valence_bin(f["valence"]) == b] for b in bins}
    by_source = {src: [t for t in texts if t[0] == src] for src in ("mosi", "sst")}

    def draw(pool: dict, b: int):
        if rng.random() < disagree_share:
            b = int(rng.choice([k for k in bins if pool[k]]))
        return pool[b][rng.integers(len(pool[b]))] if pool[b] else None

    tuples = []
    while len(tuples) < n:
        source = "sst" if rng.random() < sst_share else "mosi"
        _, text, label = by_source[source][rng.integers(len(by_source[source]))]
        b = valence_bin(label)
        voice, face = draw(voice_bins, b), draw(face_bins, b)
        if voice is None or face is None:
            continue
        valences = torch.tensor([[label, voice["valence"], face["valence"]]])
        target = float(words_first(valences, torch.ones(1, 3, dtype=torch.bool), ("text", "audio", "visual"))[0])
        tuples.append({"text": text, "source": source, "label": target, "text_label": label, "voice": voice, "face": face,
                       "agree": valence_bin(voice["valence"]) == b == valence_bin(face["valence"])})
    return tuples


def write_dataset(out: Path, tuples: dict[str, list[dict]], spec: dict) -> None:
    """The tuples in the layout `model.featurize` writes, so training takes the same path."""
    rows = []
    for split, items in tuples.items():
        for i, t in enumerate(items):
            row = {"video_id": f"{split}{i:05d}", "clip_id": f"{t['voice']['id']}+{t['face']['id']}", "text": t["text"],
                   "text_source": "given", "label": t["label"], "split": split, "file": "",
                   "label_text": t["text_label"], "label_audio": t["voice"]["valence"], "label_visual": t["face"]["valence"]}
            quality = {"voice": t["voice"]["id"], "face": t["face"]["id"], "text_corpus": t["source"]}
            save_clip(feature_path(out, row["video_id"], row["clip_id"]), t["voice"]["features"], t["face"]["features"],
                      t["text"], "given", quality)
            rows.append(row)
    (out / "feature_spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    write_csv(out / "errors.csv", ERROR_COLUMNS, [])
    # samples.csv last: its presence marks a complete dataset.
    write_csv(out / "samples.csv", SAMPLE_COLUMNS + MODALITY_LABEL_COLUMNS, rows)
