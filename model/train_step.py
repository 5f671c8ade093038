"""One optimisation step of MMIM and what it needs: the optimizers, modality dropout, and
the task target and losses.

Each batch is optimised in two stages, as in the paper:
1. the likelihood stage fits q(z_m | h_t) of every BA bound (MMILB learning rate);
2. the main stage minimises  L_task - alpha * sum CPC - beta * sum BA (+ the unimodal heads' L1),
   with its own learning rates for the text encoder and for everything else.
"""
from __future__ import annotations

import torch

from .config import ModelConfig, TrainConfig
from .data import Batch
from .data.targets import words_first
from .mmim import MMIM


def make_optimizers(model: MMIM, cfg: TrainConfig) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer | None]:
    groups = model.parameter_groups()
    main = torch.optim.Adam(
        [{"params": groups["text"], "lr": cfg.lr_text}, {"params": groups["main"], "lr": cfg.lr_main}],
        weight_decay=cfg.weight_decay,
    )
    mmilb = torch.optim.Adam(groups["mmilb"], lr=cfg.lr_mmilb, weight_decay=cfg.weight_decay) if groups["mmilb"] else None
    return main, mmilb


def drop_modalities(batch: Batch, modalities: tuple[str, ...], p: float, generator: torch.Generator) -> Batch:
    """Hide each present modality of each row with probability p, never all of a row's."""
    present = torch.stack(
        [batch.attention_mask[:, 0] > 0 if m == "text" else getattr(batch, f"{m}_lengths") > 0 for m in modalities], dim=1
    )
    hide = (torch.rand(present.shape, generator=generator) < p) & present
    # Where every present modality would go, keep one of them, chosen at random.
    emptied = present.any(1) & ~(present & ~hide).any(1)
    if emptied.any():
        keep = torch.multinomial(present[emptied].float(), 1, generator=generator).squeeze(1)
        hide[emptied.nonzero().squeeze(1), keep] = False
    for j, m in enumerate(modalities):
        if m == "text":
            batch.attention_mask = batch.attention_mask * (~hide[:, j]).unsqueeze(1)
        else:
            lengths = getattr(batch, f"{m}_lengths")
            setattr(batch, f"{m}_lengths", torch.where(hide[:, j], torch.zeros_like(lengths), lengths))
    return batch


def train_step(model: MMIM, batch, cfg: TrainConfig, opt_main, opt_mmilb, sync=None) -> dict[str, float]:
    """One two-stage step. `sync(params)`, when given, averages the gradients of `params`
    over the training processes before each optimizer step."""
    sync = sync or (lambda params: None)
    out = model(**batch.model_inputs())
    logs = {}
    use_mi = cfg.alpha > 0 or cfg.beta > 0
    lld = model.likelihood_terms(out) if use_mi and opt_mmilb is not None else {}
    if lld:
        opt_mmilb.zero_grad(set_to_none=True)
        (-sum(lld.values())).backward()
        params = [p for g in opt_mmilb.param_groups for p in g["params"]]
        sync(params)
        torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
        opt_mmilb.step()
        logs.update({f"lld_stage1_{m}": v.item() for m, v in lld.items()})

    task = torch.nn.functional.l1_loss(out["raw_score"], fused_target(batch, out, model.config, cfg))
    loss = task
    if use_mi:
        terms = model.mi_terms(out, batch.labels)
        cpc = sum(v for k, v in terms.items() if k.startswith("cpc_"))
        ba = sum((v for k, v in terms.items() if k.endswith("_bound")), torch.zeros(()))
        loss = loss - cfg.alpha * cpc - cfg.beta * ba
        logs.update({k: v.item() for k, v in terms.items()})
    if cfg.unimodal_weight > 0:
        unimodal = unimodal_loss(batch, out, model.config)
        loss = loss + cfg.unimodal_weight * sum(unimodal.values())
        logs.update({f"unimodal_{m}": v.item() for m, v in unimodal.items()})
    opt_main.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for g in opt_main.param_groups for p in g["params"]]
    sync(params)
    torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
    opt_main.step()
    logs.update(loss=loss.item(), task=task.item())
    return logs


def fused_target(batch, out: dict[str, torch.Tensor], config: ModelConfig, cfg: TrainConfig) -> torch.Tensor:
    """The label, or the words-first mix of the per-modality labels of what the model sees."""
    if cfg.target_rule == "label" or batch.modality_labels is None:
        return batch.labels
    present = torch.stack([out[f"present_{m}"] for m in config.modalities], dim=1)
    return words_first(batch.modality_labels, present, config.modalities)


def unimodal_loss(batch, out: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """Per modality, the L1 loss of its head on the rows where it is present."""
    labels = batch.modality_labels if batch.modality_labels is not None else batch.labels.unsqueeze(1).expand(-1, len(config.modalities))
    losses = {}
    for j, m in enumerate(config.modalities):
        rows = out[f"present_{m}"]
        if rows.any():
            losses[m] = torch.nn.functional.l1_loss(out[f"unimodal_{m}"][rows], labels[rows, j])
    return losses
