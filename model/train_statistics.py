"""What single-clip diagnostics need from the training set, kept in the model's buffers
after training: H(z_m) of every BA bound, the mean and a fixed random bank of each h_m,
and the percentiles of every BA and CPC diagnostic."""
from __future__ import annotations

import torch

from .config import TrainConfig
from .data import Collator, Sample
from .inference import predict
from .mi import mixture_entropy
from .mmim import MMIM, QUANTILES


@torch.no_grad()
def store_training_statistics(model: MMIM, samples: list[Sample], collate: Collator, cfg: TrainConfig) -> dict[str, float]:
    """Keep in the model what single-clip diagnostics need from the training set:
    H(z_m) of every BA bound, and the mean and a fixed random bank of each h_m."""
    out = predict(model, samples, collate, 2 * cfg.batch_size, cfg.device)
    generator = torch.Generator().manual_seed(cfg.seed)
    # Enough candidates that the bank fills from present rows even when a modality is often absent.
    bank_rows = torch.randperm(len(samples), generator=generator)
    for m, reference in model.reference.items():
        # Statistics of real representations only: rows where m is absent hold the absent vector.
        present = out[f"present_{m}"]
        if not present.any():
            raise ValueError(f"no training sample has the {m} modality")
        h = out[f"h_{m}"].to(cfg.device)
        reference.mean.copy_(h[present].mean(0))
        rows = bank_rows[present[bank_rows]]
        # With fewer such samples than the bank holds, repeat rows rather than leave zeros.
        reference.bank.copy_(h[rows.repeat(-(-len(reference.bank) // len(rows)))[: len(reference.bank)]])
    labels = torch.tensor([s.label for s in samples], device=cfg.device)
    entropies = {}
    for m, ba in model.ba.items():
        rows = MMIM.pair_rows(out, m)
        ba.entropy.copy_(mixture_entropy(ba.project(out[f"h_{m}"][rows].to(cfg.device)), labels[rows]))
        entropies[m] = ba.entropy.item()
    store_diagnostic_quantiles(model, {k: v.to(cfg.device) for k, v in out.items()})
    return entropies


@torch.no_grad()
def store_diagnostic_quantiles(model: MMIM, out: dict[str, torch.Tensor]) -> None:
    """The 0th..100th percentiles of every BA and CPC diagnostic over the training rows where
    it is defined (BA: text and m present; CPC: m present), so that a clip's value can be
    read as a percentile. Needs the entropies, mean and bank already stored."""
    diag = model.diagnostics(out)
    levels = torch.linspace(0, 1, QUANTILES, device=out["score"].device)
    for m, reference in model.reference.items():
        cpc_rows, ba_rows = out[f"present_{m}"], MMIM.pair_rows(out, m) if m in model.ba else None
        if cpc_rows.any():
            reference.cpc_quantiles.copy_(torch.quantile(diag[f"cpc_{m}"][cpc_rows], levels))
        if ba_rows is not None and ba_rows.any():
            reference.ba_quantiles.copy_(torch.quantile(diag[f"ba_text_{m}"][ba_rows], levels))
