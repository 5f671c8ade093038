"""Datasets and the one collate used by training and serving.

A sample is a transcript, a label and one (T, d) feature sequence per
non-verbal modality. MOSI's features are one vector per segment, so its
sequences have length 1.

A modality can be absent from a sample: an empty transcript, or a (0, d)
sequence. The collate marks it (an all-zero attention mask, or length 0) and
the model substitutes a learned "absent" vector for it.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .context import Segment, join_context, previous_texts

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


@dataclass
class Sample:
    id: str
    text: str
    label: float
    features: dict[str, np.ndarray] = field(default_factory=dict)  # modality -> (T, d) float32
    # Optional valence of each modality on its own (tuples built from separate corpora);
    # a modality without one falls back to `label`.
    targets: dict[str, float] = field(default_factory=dict)
    # Transcripts of the segments before this one in its video, most recent first (model/context.py).
    context: tuple[str, ...] = ()


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    audio: torch.Tensor | None = None
    audio_lengths: torch.Tensor | None = None
    visual: torch.Tensor | None = None
    visual_lengths: torch.Tensor | None = None
    # (B, M) per-modality labels in the model's modality order (Sample.targets, else the label).
    modality_labels: torch.Tensor | None = None

    def model_inputs(self) -> dict[str, torch.Tensor]:
        names = ("input_ids", "attention_mask", "audio", "audio_lengths", "visual", "visual_lengths")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def to(self, device: str | torch.device) -> "Batch":
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()}
        return Batch(**moved)


class Collator:
    """Tokenises text and pads feature sequences into a `Batch`.

    A sample with context is tokenised as the pair (its text, its context joined by the
    tokenizer's separator); truncation takes tokens from the longer of the two first, so
    the target keeps its words unless it alone is over half of max_text_len.
    """

    def __init__(self, tokenizer, max_text_len: int, modalities: tuple[str, ...]):
        self.tokenizer = tokenizer
        self.max_text_len = max_text_len
        self.modalities = tuple(modalities)
        self.nonverbal = tuple(m for m in ("audio", "visual") if m in modalities)

    def __call__(self, samples: list[Sample]) -> Batch:
        if any(s.context for s in samples):
            # One row at a time, so that a row without context reads exactly as it would alone
            # (a pair with an empty second text would add a separator).
            rows = [self.tokenizer(s.text, join_context(list(s.context), self.tokenizer.sep_token) or None,
                                   truncation=True, max_length=self.max_text_len) for s in samples]
            tokens = self.tokenizer.pad(rows, padding=True, return_tensors="pt")
        else:
            tokens = self.tokenizer([s.text for s in samples], padding=True, truncation=True,
                                    max_length=self.max_text_len, return_tensors="pt")
        # An absent transcript is marked by an all-zero attention mask; the
        # model then ignores the encoder's output for that row.
        text_present = torch.tensor([[bool(s.text.strip())] for s in samples])
        batch = Batch(
            input_ids=tokens["input_ids"],
            attention_mask=tokens["attention_mask"] * text_present,
            labels=torch.tensor([s.label for s in samples], dtype=torch.float32),
            modality_labels=torch.tensor([[s.targets.get(m, s.label) for m in self.modalities] for s in samples],
                                         dtype=torch.float32),
        )
        for m in self.nonverbal:
            seqs = [s.features[m] for s in samples]
            lengths = torch.tensor([len(x) for x in seqs], dtype=torch.long)
            padded = torch.zeros(len(seqs), max(1, int(lengths.max())), seqs[0].shape[1])
            for i, x in enumerate(seqs):
                padded[i, : len(x)] = torch.from_numpy(np.asarray(x, dtype=np.float32))
            setattr(batch, m, padded)
            setattr(batch, f"{m}_lengths", lengths)
        return batch


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
        from .features.dataset import load_featurized

        return load_featurized(data_dir, context)
    return load_mosi(data_dir, benchmark, context)


def load_mosi(data_dir: str | Path, benchmark: str, context: int = 0) -> dict[str, list[Sample]]:
    """Train/valid/test samples of a MOSI benchmark from the shared data folder."""
    if benchmark not in BENCHMARKS or benchmark == "featurized":
        raise ValueError(f"unknown benchmark {benchmark!r}; choose from {sorted(BENCHMARKS)}")
    data_dir = Path(data_dir)
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


def feature_statistics(samples: list[Sample], modality: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std over every frame of the training samples."""
    frames = np.concatenate([s.features[modality] for s in samples], axis=0).astype(np.float64)
    return torch.tensor(frames.mean(0), dtype=torch.float32), torch.tensor(frames.std(0), dtype=torch.float32)
