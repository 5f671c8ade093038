"""A sample: a transcript, a label and one (T, d) feature sequence per non-verbal modality,
and the one collate that turns samples into padded arrays, for training and serving.

MOSI's features are one vector per segment, so its sequences have length 1. A modality
can be absent from a sample: an empty transcript, or a (0, d) sequence. The collate marks
it (an all-zero attention mask, or length 0) and the model substitutes a learned "absent"
vector for it. No torch here: serving runs without it (training's tensors: batches.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .context import join_context


def spread(rows: list, n: int) -> list:
    """At most n of rows, evenly spaced over the list (first and last included)."""
    return [rows[i] for i in np.linspace(0, len(rows) - 1, min(n, len(rows))).round().astype(int)] if rows else []


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


def collate_arrays(tokenizer, max_text_len: int, modalities: tuple[str, ...], samples: list[Sample]) -> dict[str, np.ndarray]:
    """Padded arrays for `samples`: input_ids, attention_mask, labels, modality_labels and,
    per non-verbal modality m, m (B, T, d) and m_lengths.

    A sample with context is tokenised as the pair (its text, its context joined by the
    tokenizer's separator); truncation takes tokens from the longer of the two first, so
    the target keeps its words unless it alone is over half of max_text_len.
    """
    if any(s.context for s in samples):
        # One row at a time, so that a row without context reads exactly as it would alone
        # (a pair with an empty second text would add a separator).
        rows = [tokenizer(s.text, join_context(list(s.context), tokenizer.sep_token) or None,
                          truncation=True, max_length=max_text_len) for s in samples]
        tokens = tokenizer.pad(rows, padding=True, return_tensors="np")
    else:
        tokens = tokenizer([s.text for s in samples], padding=True, truncation=True, max_length=max_text_len,
                           return_tensors="np")
    # An absent transcript is marked by an all-zero attention mask; the
    # model then ignores the encoder's output for that row.
    text_present = np.array([[bool(s.text.strip())] for s in samples])
    out = {
        "input_ids": tokens["input_ids"].astype(np.int64),
        "attention_mask": (tokens["attention_mask"] * text_present).astype(np.int64),
        "labels": np.array([s.label for s in samples], dtype=np.float32),
        "modality_labels": np.array([[s.targets.get(m, s.label) for m in modalities] for s in samples],
                                    dtype=np.float32).reshape(len(samples), len(modalities)),
    }
    for m in (m for m in ("audio", "visual") if m in modalities):
        seqs = [s.features[m] for s in samples]
        lengths = np.array([len(x) for x in seqs], dtype=np.int64)
        padded = np.zeros((len(seqs), max(1, int(lengths.max())), seqs[0].shape[1]), np.float32)
        for i, x in enumerate(seqs):
            padded[i, : len(x)] = x
        out[m], out[f"{m}_lengths"] = padded, lengths
    return out
