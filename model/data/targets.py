"""Training targets for tuples whose modalities carry their own labels.

A tuple built from separate corpora has one valence per modality (the words', the
voice's, the face's), and they may disagree. `words_first` turns them into one target
the way MOSI's annotators behave: the words decide when they are clear, and the voice
and the face move the score when the words are neutral or missing.

    c   = min(1, |y_text| / CLEAR_TEXT)        how clear the words are
    w   = 0.5 + 0.5 c                          the words' weight
    y   = w y_text + (1 - w) mean(y_voice, y_face)   over the non-verbal modalities present
    y   = y_text                               when no non-verbal modality is present
    y   = mean(y_voice, y_face)                when the text is absent

The rule is applied after modality dropout, to the modalities the model actually sees.
"""
from __future__ import annotations

import torch

CLEAR_TEXT = 1.5  # |valence| at which the words alone decide


def words_first(labels: torch.Tensor, present: torch.Tensor, modalities: tuple[str, ...]) -> torch.Tensor:
    """labels, present: (B, M) in the order of `modalities` (text first); rows need one modality."""
    if modalities[0] != "text":
        raise ValueError("the text must be the first modality")
    text, y_text = present[:, 0], labels[:, 0]
    nv_present = present[:, 1:].float()
    n_nv = nv_present.sum(1)
    y_nv = (torch.nan_to_num(labels[:, 1:]) * nv_present).sum(1) / n_nv.clamp_min(1)
    w = 0.5 + 0.5 * (y_text.abs() / CLEAR_TEXT).clamp(max=1.0)
    mixed = torch.where(n_nv > 0, w * y_text + (1 - w) * y_nv, y_text)
    return torch.where(text, mixed, y_nv)
