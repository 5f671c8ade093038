"""Batches of tensors for training and PyTorch inference, from the one collate (samples.py)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .samples import Sample, collate_arrays


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
    """Samples -> a `Batch` of tensors, through the one collate (samples.collate_arrays)."""

    def __init__(self, tokenizer, max_text_len: int, modalities: tuple[str, ...]):
        self.tokenizer = tokenizer
        self.max_text_len = max_text_len
        self.modalities = tuple(modalities)

    def __call__(self, samples: list[Sample]) -> Batch:
        arrays = collate_arrays(self.tokenizer, self.max_text_len, self.modalities, samples)
        return Batch(**{k: torch.from_numpy(v) for k, v in arrays.items()})


def feature_statistics(samples: list[Sample], modality: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std over every frame of the training samples."""
    frames = np.concatenate([s.features[modality] for s in samples], axis=0).astype(np.float64)
    return torch.tensor(frames.mean(0), dtype=torch.float32), torch.tensor(frames.std(0), dtype=torch.float32)
