"""A model's outputs over a list of samples, in batches, and the metrics on them."""
from __future__ import annotations

import torch

from .config import TrainConfig
from .data import Collator, Sample
from .metrics import sentiment_metrics
from .mmim import MMIM


def iterate_batches(samples: list[Sample], batch_size: int, generator: torch.Generator | None = None):
    """Shuffled by `generator` when one is given, else in order (evaluation)."""
    order = torch.randperm(len(samples), generator=generator).tolist() if generator else list(range(len(samples)))
    for start in range(0, len(order), batch_size):
        yield [samples[i] for i in order[start : start + batch_size]]


@torch.no_grad()
def predict(model: MMIM, samples: list[Sample], collate: Collator, batch_size: int, device: str) -> dict[str, torch.Tensor]:
    """Concatenated model outputs over `samples`, in order, in eval mode."""
    was_training = model.training
    model.eval()
    outs: dict[str, list[torch.Tensor]] = {}
    for chunk in iterate_batches(samples, batch_size):
        out = model(**collate(chunk).to(device).model_inputs())
        for k, v in out.items():
            outs.setdefault(k, []).append(v.cpu())
    model.train(was_training)
    return {k: torch.cat(v) for k, v in outs.items()}


def evaluate(model, samples, collate, cfg: TrainConfig) -> dict[str, float]:
    scores = predict(model, samples, collate, 2 * cfg.batch_size, cfg.device)["score"]
    return sentiment_metrics(scores.numpy(), [s.label for s in samples])
