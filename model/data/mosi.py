"""CMU-MOSI from the shared data folder (transcripts, labels, utterance-level features), and
the one entry point that loads any benchmark's splits."""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np

from model.files import data_root

from .context import Segment, previous_texts
from .featurized import load_featurized
from .samples import Sample

# Which modalities each benchmark uses. mosi-std leaves video out because the
# shared video features were trained with labels that cover the std test fold.
BENCHMARKS = {
    "mosi-std": ("text", "audio"),
    "mosi-ctx": ("text", "audio", "visual"),
    # A dataset written by `python -m model.featurize` from raw clips.
    "featurized": ("text", "audio", "visual"),
}
# Share of mosi-ctx training videos held out for validation.
CTX_VALID_SHARE = 0.15



def _video_hash(video_id: str) -> str:
    return hashlib.sha256(video_id.encode()).hexdigest()


def ctx_valid_videos(train_videos: set[str]) -> set[str]:
    """A fixed, seed-independent set of whole training videos for validation."""
    ordered = sorted(train_videos, key=_video_hash)
    return set(ordered[: max(1, round(CTX_VALID_SHARE * len(ordered)))])


def load_splits(benchmark: str, data_dir: str | Path, context: int = 0) -> dict[str, list[Sample]]:
    """Train/valid/test samples of any benchmark: MOSI's, or a featurized dataset; with
    context > 0, each sample carries the transcripts of up to that many previous segments."""
    if benchmark == "featurized":
        if not str(data_dir):
            raise ValueError("a featurized benchmark needs --data-dir: the folder `python -m model.featurize` wrote")
        return load_featurized(data_dir, context)
    return load_mosi(data_dir, benchmark, context)


def load_mosi(data_dir: str | Path, benchmark: str, context: int = 0) -> dict[str, list[Sample]]:
    """Train/valid/test samples of a MOSI benchmark from `data_dir` ("": the shared data folder's mosi/)."""
    if benchmark not in BENCHMARKS or benchmark == "featurized":
        raise ValueError(f"unknown benchmark {benchmark!r}; choose from {sorted(BENCHMARKS)}")
    data_dir = Path(data_dir) if str(data_dir) else data_root() / "mosi"
    with open(data_dir / "segments.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    arrays = np.load(data_dir / "utterance_features.npz")
    if list(arrays["id"]) != [r["id"] for r in rows]:
        raise ValueError("utterance_features.npz rows are not aligned with segments.csv")
    features = {"audio": arrays["audio"], "visual": arrays["video"]}
    modalities = BENCHMARKS[benchmark]

    if benchmark == "mosi-std":
        split_of = [r["split_std"] for r in rows]
    else:
        valid_videos = ctx_valid_videos({r["video_id"] for r in rows if r["split_ctx"] == "train"})
        split_of = [
            "valid" if r["split_ctx"] == "train" and r["video_id"] in valid_videos else r["split_ctx"]
            for r in rows
        ]

    # MOSI transcripts are all upper case; encoders expect normal text.
    texts = [r["text"].lower() for r in rows]
    before = previous_texts(
        [Segment(r["video_id"], split, (float(r["start_s"]), int(r["clip_id"])), text)
         for r, split, text in zip(rows, split_of, texts)], context
    )
    splits: dict[str, list[Sample]] = {"train": [], "valid": [], "test": []}
    for i, (row, split) in enumerate(zip(rows, split_of)):
        splits[split].append(
            Sample(
                id=row["id"],
                text=texts[i],
                label=float(row["label"]),
                features={m: features[m][i : i + 1] for m in modalities if m != "text"},
                context=tuple(before[i]),
            )
        )
    return splits
