"""Train MMIM on a MOSI benchmark.

    python -m model.train --benchmark mosi-std --seed 0 --out-dir runs/mosi-std/full/seed0

Each batch is optimised in two stages, as in the paper:
1. the likelihood stage fits q(z_m | h_t) of every BA bound (MMILB learning rate);
2. the main stage minimises  L_task - alpha * sum CPC - beta * sum BA,
   with its own learning rates for the text encoder and for everything else.

The model is selected on the validation split only. After every epoch the run
state is written atomically; running the same command again after a crash or
kill resumes after the last finished epoch (`--no-resume` starts over) and, on
CPU, ends bit-identical to an uninterrupted run, because every epoch reseeds
from (seed, epoch).

Under torchrun (`torchrun --nproc_per_node N -m model.train ...`) it trains on N
processes, each on its own shard of every epoch with `--batch-size` rows per step
(model/distributed.py); rank 0 writes the checkpoints and logs.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import time
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .checkpoint import FEATURE_SPEC, atomic_write_text, load_weights, save_checkpoint, save_weights
from . import distributed
from .cli import add_dataclass_flags, dataclass_from_args
from .config import ModelConfig, TrainConfig, TupleNCEConfig
from .text_models import resolve_text_encoder
from .data import BENCHMARKS, Batch, Collator, Sample, feature_statistics, load_splits
from .metrics import sentiment_metrics
from .mi import mixture_entropy
from .mmim import MMIM, QUANTILES
from .targets import words_first

log = logging.getLogger("mmim.train")
RESUME_FILE = "resume.json"
# Offsets each process's random stream under torchrun; rank 0 keeps a plain run's.
RANK_SEED_STRIDE = 7_919_993


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


def build_model_config(cfg: TrainConfig, splits: dict[str, list[Sample]]) -> ModelConfig:
    available = BENCHMARKS[cfg.benchmark]
    requested = tuple(cfg.modalities) or available
    missing = set(requested) - set(available)
    if missing:
        raise ValueError(f"{cfg.benchmark} has no {sorted(missing)} features; it offers {available}")
    # Keep the canonical order so that the fusion input layout does not depend on flag order.
    modalities = ("text",) if cfg.variant == "text" else tuple(m for m in available if m in requested)
    dims = {f"{m}_dim": splits["train"][0].features[m].shape[1] for m in modalities if m != "text"}
    return replace(cfg.model, modalities=modalities, unimodal_heads=cfg.model.unimodal_heads or cfg.unimodal_weight > 0, **dims)


def encoder_label(model: ModelConfig) -> str:
    """How summaries name a run's text encoder: the alias or the folder's name, and the pooling if not [CLS]."""
    name = {"": "MiniLM-L6", "minilm": "MiniLM-L6", "mpnet": "MPNet"}.get(model.text_encoder, Path(model.text_encoder).name)
    return name if model.text_pooling == "cls" else f"{name} ({model.text_pooling})"


def make_optimizers(model: MMIM, cfg: TrainConfig) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer | None]:
    groups = model.parameter_groups()
    main = torch.optim.Adam(
        [{"params": groups["text"], "lr": cfg.lr_text}, {"params": groups["main"], "lr": cfg.lr_main}],
        weight_decay=cfg.weight_decay,
    )
    mmilb = torch.optim.Adam(groups["mmilb"], lr=cfg.lr_mmilb, weight_decay=cfg.weight_decay) if groups["mmilb"] else None
    return main, mmilb


def iterate_batches(samples: list[Sample], batch_size: int, generator: torch.Generator | None = None):
    """Shuffled by `generator` when one is given, else in order (evaluation)."""
    order = torch.randperm(len(samples), generator=generator).tolist() if generator else list(range(len(samples)))
    for start in range(0, len(order), batch_size):
        yield [samples[i] for i in order[start : start + batch_size]]


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


def plot_curves(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    panels = [
        ("training loss", ["train_loss", "train_task"]),
        ("validation", ["valid_mae", "valid_corr"]),
        ("MI terms (nats)", sorted({k for h in history for k in h if k.startswith(("train_ba_", "train_cpc_")) and not k.endswith(("_lld", "_entropy"))})),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5))
    for ax, (title, keys) in zip(axes, panels):
        for k in keys:
            ax.plot(epochs, [h.get(k, np.nan) for h in history], marker="o", label=k.removeprefix("train_"))
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if keys:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_resume_state(run_dir: Path, model, opt_main, opt_mmilb, state: dict) -> None:
    """Write state-<epoch>/ and only then point resume.json at it."""
    state_dir = run_dir / f"state-{state['epoch']}"
    state_dir.mkdir(parents=True, exist_ok=True)
    save_weights(model, state_dir / "model.safetensors")
    optim = {"main": opt_main.state_dict()}
    if opt_mmilb is not None:
        optim["mmilb"] = opt_mmilb.state_dict()
    torch.save(optim, state_dir / "optimizer.pt")
    atomic_write_text(run_dir / RESUME_FILE, json.dumps({**state, "dir": state_dir.name}) + "\n")
    for old in run_dir.glob("state-*"):
        if old != state_dir:
            shutil.rmtree(old, ignore_errors=True)


def load_resume_state(run_dir: Path, model, opt_main, opt_mmilb, device: str) -> dict | None:
    pointer = run_dir / RESUME_FILE
    if not pointer.is_file():
        return None
    state = json.loads(pointer.read_text())
    state_dir = run_dir / state["dir"]
    load_weights(model, state_dir / "model.safetensors", device)
    optim = torch.load(state_dir / "optimizer.pt", map_location=device, weights_only=True)
    opt_main.load_state_dict(optim["main"])
    if opt_mmilb is not None:
        opt_mmilb.load_state_dict(optim["mmilb"])
    return state


def train(cfg: TrainConfig, resume: bool = True) -> dict:
    """Train (or resume) the run in cfg.out_dir; its metrics. Under torchrun, on every process."""
    ctx, device = distributed.setup(cfg.device)
    try:
        return _train(replace(cfg, device=device), resume, ctx)
    finally:
        distributed.teardown(ctx)


def _train(cfg: TrainConfig, resume: bool, ctx: distributed.Context) -> dict:
    from transformers import AutoTokenizer

    run_dir = Path(cfg.out_dir)
    if resume and (run_dir / "metrics.json").is_file():
        log.info("%s already finished; remove it to retrain", run_dir)
        return json.loads((run_dir / "metrics.json").read_text())
    if ctx.is_main:  # the only rank that writes
        run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    seed_everything(cfg.seed)

    splits = load_splits(cfg.benchmark, cfg.data_dir, cfg.model.context)
    if cfg.limit_train:
        splits["train"] = splits["train"][: cfg.limit_train]
    model_cfg = build_model_config(cfg, splits)
    model = MMIM(model_cfg)
    for m, encoder in model.encoders.items():
        encoder.set_normalisation(*feature_statistics(splits["train"], m))
    model.to(cfg.device)
    distributed.broadcast_state(ctx, model)  # one starting point (the text encoder is pretrained; the rest is seeded)
    tokenizer = AutoTokenizer.from_pretrained(resolve_text_encoder(model_cfg.text_encoder))
    collate = Collator(tokenizer, model_cfg.max_text_len, model_cfg.modalities)
    pretrain_report = None
    if cfg.pretrain == "tuple_nce":
        # Saved in the run folder before epoch 1, so a resumed run loads it instead of redoing it.
        from .tuple_nce import pretrain_or_reuse

        if ctx.is_main:
            pretrain_report = pretrain_or_reuse(model, splits, collate, cfg, run_dir, reuse=resume)
        distributed.barrier(ctx)
        distributed.broadcast_state(ctx, model)
    opt_main, opt_mmilb = make_optimizers(model, cfg)
    extra = {"train": {k: v for k, v in asdict(cfg).items() if k != "model"}}

    state = load_resume_state(run_dir, model, opt_main, opt_mmilb, cfg.device) if resume else None
    if state is None:
        state = {"epoch": 0, "best": None, "best_epoch": 0, "stale": 0, "history": []}
    elif ctx.is_main:
        log.info("resuming %s after epoch %d", run_dir, state["epoch"])
    if ctx.is_main and state["epoch"] == 0:
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
        save_checkpoint(model, tokenizer, run_dir, extra)
        if cfg.benchmark == "featurized":
            # What the features are travels with the weights, so that export and the app
            # can refuse a front end that makes different ones.
            shutil.copyfile(Path(cfg.data_dir) / FEATURE_SPEC, run_dir / FEATURE_SPEC)
    elif ctx.is_main:
        # A kill between the two writes may have logged the lost epoch already.
        lines = "".join(json.dumps(h) + "\n" for h in state["history"])
        atomic_write_text(run_dir / "metrics.jsonl", lines)
    log.info(
        "%s %s seed %d: %s, %d/%d/%d samples%s",
        cfg.benchmark, cfg.variant, cfg.seed, "+".join(model_cfg.modalities),
        len(splits["train"]), len(splits["valid"]), len(splits["test"]),
        f", {ctx.world_size} processes of {cfg.batch_size} rows per step" if ctx.enabled else "",
    )
    sync = partial(distributed.average_gradients, ctx) if ctx.enabled else None

    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        if state["stale"] >= cfg.patience:
            break
        start = time.perf_counter()
        # Each process draws its own dropout and modality-dropout masks (rank 0's are a plain run's).
        seed_everything(epoch_seed(cfg.seed, epoch) + RANK_SEED_STRIDE * ctx.rank)
        generator = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch) + RANK_SEED_STRIDE * ctx.rank)
        model.train()
        sums: dict[str, float] = {}
        if ctx.enabled:
            mine = [splits["train"][i] for i in distributed.shard(ctx, len(splits["train"]), cfg.seed, epoch)]
            batches = iterate_batches(mine, cfg.batch_size)
        else:
            mine, batches = splits["train"], iterate_batches(splits["train"], cfg.batch_size, generator)
        n_batches = -(-len(mine) // cfg.batch_size)
        bar = tqdm(batches, total=n_batches, desc=f"epoch {epoch}", leave=False, disable=not cfg.progress or not ctx.is_main)
        for samples in bar:
            batch = collate(samples)
            if cfg.modality_dropout > 0:
                batch = drop_modalities(batch, model_cfg.modalities, cfg.modality_dropout, generator)
            logs = train_step(model, batch.to(cfg.device), cfg, opt_main, opt_mmilb, sync)
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.set_postfix(loss=f"{logs['loss']:.3f}")
        seconds = time.perf_counter() - start
        train_means = distributed.mean_over_ranks(ctx, {k: v / n_batches for k, v in sums.items()})
        # Rank 0 scores validation and decides; every process follows its decision.
        valid = distributed.broadcast_object(ctx, evaluate(model, splits["valid"], collate, cfg) if ctx.is_main else None)
        record = {"epoch": epoch, "seconds": seconds}
        record.update({f"train_{k}": v for k, v in train_means.items()})
        record.update({f"valid_{k}": v for k, v in valid.items()})
        if ctx.is_main:
            with open(run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
        state["history"].append(record)

        value = valid[cfg.select_on]
        value = -value if cfg.select_on in ("corr",) or cfg.select_on.startswith(("acc", "f1")) else value
        if state["best"] is None or value < state["best"]:
            state.update(best=value, best_epoch=epoch, stale=0)
            if ctx.is_main:
                save_weights(model, run_dir / "model.safetensors")
        else:
            state["stale"] += 1
        state["epoch"] = epoch
        if ctx.is_main:
            save_resume_state(run_dir, model, opt_main, opt_mmilb, state)
        log.info(
            "epoch %d  %.1fs  loss %.4f  valid mae %.4f corr %.4f%s",
            epoch, seconds, record["train_loss"], valid["mae"], valid["corr"],
            "  *" if state["best_epoch"] == epoch else "",
        )

    in_sync = distributed.max_parameter_difference(ctx, model)
    distributed.barrier(ctx)  # rank 0's last write is done
    if not ctx.is_main:
        return {}
    load_weights(model, run_dir / "model.safetensors", cfg.device)
    entropies = store_training_statistics(model, splits["train"], collate, cfg)
    save_weights(model, run_dir / "model.safetensors")
    history = state["history"]
    metrics = {
        "benchmark": cfg.benchmark,
        "variant": cfg.variant,
        "seed": cfg.seed,
        "modalities": list(model_cfg.modalities),
        # The folder name identifies a custom encoder in summaries.
        "text_encoder": encoder_label(cfg.model),
        "context": cfg.model.context,
        "best_epoch": state["best_epoch"],
        "epochs_run": len(history),
        "epoch_seconds": float(np.median([h["seconds"] for h in history])),
        "train_entropy": entropies,
        "valid": evaluate(model, splits["valid"], collate, cfg),
        "test": evaluate(model, splits["test"], collate, cfg),
    }
    if pretrain_report is not None:
        metrics["tuple_nce"] = pretrain_report
    if ctx.enabled:
        metrics["distributed"] = {"world_size": ctx.world_size, "batch_size_per_process": cfg.batch_size,
                                  "max_parameter_difference": in_sync}
    plot_curves(history, run_dir / "curves.png")
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    (run_dir / RESUME_FILE).unlink(missing_ok=True)
    for old in run_dir.glob("state-*"):
        shutil.rmtree(old, ignore_errors=True)
    log.info("test: %s", "  ".join(f"{k} {v:.4f}" for k, v in metrics["test"].items()))
    return metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_flags(parser, TrainConfig)
    add_dataclass_flags(parser, ModelConfig, skip=("modalities", "audio_dim", "visual_dim"))
    add_dataclass_flags(parser, TupleNCEConfig)
    parser.add_argument("--no-resume", action="store_true", help="start over even if a run state exists")
    args = parser.parse_args(argv)
    # Under torchrun only rank 0 reports progress.
    rank = os.environ.get("RANK", "0")
    logging.basicConfig(level=logging.INFO if rank == "0" else logging.WARNING,
                        format=f"%(asctime)s %(name)s{'' if rank == '0' else f' [rank {rank}]'} %(message)s")
    cfg = dataclass_from_args(
        TrainConfig, args, model=dataclass_from_args(ModelConfig, args), tuple_nce=dataclass_from_args(TupleNCEConfig, args)
    )
    train(cfg, resume=not args.no_resume)


if __name__ == "__main__":
    main()
