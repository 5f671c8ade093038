"""Read and write a featurized dataset (the layout `python -m model.featurize` produces).

DATASET/feature_spec.json   FrontEnd.spec()
DATASET/samples.csv         video_id, clip_id, text, text_source, label, split, file
                            [, label_text, label_audio, label_visual: optional per-modality valence]
DATASET/features/<video_id>__<clip_id>.npz   audio, visual (+ text, text_source, quality JSON)
DATASET/errors.csv          video_id, clip_id, file, reason
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from model.files import atomic_write

from .context import Segment, previous_texts
from .samples import Sample

SAMPLE_COLUMNS = ("video_id", "clip_id", "text", "text_source", "label", "split", "file")
MODALITY_LABEL_COLUMNS = ("label_text", "label_audio", "label_visual")
ERROR_COLUMNS = ("video_id", "clip_id", "file", "reason")
SPLITS = ("train", "valid", "test")


def feature_path(dataset: str | Path, video_id: str, clip_id: str) -> Path:
    return Path(dataset) / "features" / f"{video_id}__{clip_id}.npz"


def sample_id(video_id: str, clip_id: str) -> str:
    return f"{video_id}_{clip_id}"  # the id MOSI's segments.csv uses



def save_clip(path: Path, audio: np.ndarray, visual: np.ndarray, text: str, text_source: str, quality: dict) -> None:
    atomic_write(path, lambda tmp: np.savez(tmp, audio=audio, visual=visual, text=np.str_(text),
                                            text_source=np.str_(text_source),
                                            quality=np.str_(json.dumps(quality, default=str))))


def load_clip(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {"audio": z["audio"], "visual": z["visual"], "text": str(z["text"]),
                "text_source": str(z["text_source"]), "quality": json.loads(str(z["quality"]))}


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    def write(tmp):
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)

    atomic_write(path, write)


def load_featurized(dataset: str | Path, context: int = 0) -> dict[str, list[Sample]]:
    """{"train","valid","test": [Sample]} with features {"audio": (T_a, d), "visual": (T_v, d)};
    length 0 means that modality is absent for the clip, "" text means text absent. With
    context > 0, the texts of up to that many earlier clips of the same video and split
    (ordered by clip_id, numerically where clip ids are numbers)."""
    dataset = Path(dataset)
    if not (dataset / "samples.csv").is_file():
        raise FileNotFoundError(f"{dataset}/samples.csv not found; build it with `python -m model.featurize`")
    splits: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    with open(dataset / "samples.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    order = [(int(r["clip_id"]),) if r["clip_id"].isdigit() else (i,) for i, r in enumerate(rows)]
    before = previous_texts([Segment(r["video_id"], r["split"], o, r["text"]) for r, o in zip(rows, order)], context)
    for row, previous in zip(rows, before):
        clip = load_clip(feature_path(dataset, row["video_id"], row["clip_id"]))
        targets = {c.removeprefix("label_"): float(row[c]) for c in MODALITY_LABEL_COLUMNS if row.get(c)}
        splits[row["split"]].append(Sample(
            id=sample_id(row["video_id"], row["clip_id"]), text=row["text"], label=float(row["label"]),
            features={"audio": clip["audio"].astype(np.float32), "visual": clip["visual"].astype(np.float32)},
            targets=targets, context=tuple(previous)))
    return splits

