"""Samples, batches and the one collate used by training and serving.

A sample is a transcript, a label and one (T, d) feature sequence per
non-verbal modality. MOSI's features are one vector per segment, so its
sequences have length 1.

A modality can be absent from a sample: an empty transcript, or a (0, d)
sequence. The collate marks it (an all-zero attention mask, or length 0) and
the model substitutes a learned "absent" vector for it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .context import join_context

@dataclass
class Sample:
    id: str
    text: str
    label: float
    features: dict[str, np.ndarray] = field(default_factory=dict)  # modality -> (T, d) float32
    # Optional valence of each modality on its own (tuples built from separate corpora);
    # a modality without one falls back to `label`.
    targets: dict[str, float] = field(default_factory=dict)
    # Transcripts of the segments before this one in its video, most recent first (model/data/context.py).
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


def feature_statistics(samples: list[Sample], modality: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std over every frame of the training samples."""
    frames = np.concatenate([s.features[modality] for s in samples], axis=0).astype(np.float64)
    return torch.tensor(frames.mean(0), dtype=torch.float32), torch.tensor(frames.std(0), dtype=torch.float32)
