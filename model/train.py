"""Train MMIM on a MOSI benchmark.

    python -m model.train --benchmark mosi-std --seed 0 --out-dir runs/mosi-std/full/seed0

Each batch is optimised in two stages, as in the paper (model/train_step.py).

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
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import distributed
from .checkpoint import FEATURE_SPEC, load_weights, save_checkpoint, save_weights
from .cli import add_dataclass_flags, dataclass_from_args
from .config import ModelConfig, TrainConfig, TupleNCEConfig
from .data import BENCHMARKS, Collator, Sample, feature_statistics, load_splits
from .files import NoSpaceError, atomic_write_text, held_exclusively
from .inference import evaluate, iterate_batches
from .mmim import MMIM
from .run_state import (RANK_SEED_STRIDE, RESUME_FILE, derived_seed, load_resume_state, plot_curves, save_resume_state,
                        seed_everything)
from .text_models import resolve_text_encoder
from .text_prefix import PrefixMemo
from .train_statistics import store_training_statistics
from .train_step import drop_modalities, make_optimizers, train_step
from .tuple_nce import pretrain_or_reuse

log = logging.getLogger("mmim.train")


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
    """How summaries name a run's text encoder: the alias or the folder's name, with the pooling
    if not [CLS] and the frozen lower layers if any, e.g. "MPNet (mean, k8)"."""
    name = {"": "MiniLM-L6", "minilm": "MiniLM-L6", "mpnet": "MPNet"}.get(model.text_encoder, Path(model.text_encoder).name)
    notes = [model.text_pooling] if model.text_pooling != "cls" else []
    notes += [f"k{model.text_frozen_layers}"] if model.text_frozen_layers else []
    return f"{name} ({', '.join(notes)})" if notes else name


@dataclass
class Run:
    """Everything one training run holds while it trains."""
    cfg: TrainConfig
    ctx: distributed.Context
    dir: Path
    splits: dict[str, list[Sample]]
    model: MMIM
    collate: Collator
    opt_main: torch.optim.Optimizer
    opt_mmilb: torch.optim.Optimizer | None
    state: dict
    pretrain_report: dict | None = None


def train(cfg: TrainConfig, resume: bool = True) -> dict:
    """Train (or resume) the run in cfg.out_dir; its metrics. Under torchrun, on every process."""
    ctx, device = distributed.setup(cfg.device)
    try:
        cfg = replace(cfg, device=device)
        run_dir = Path(cfg.out_dir)
        # Two trainings of one folder would overwrite each other's resume state: a second
        # launch of the same grid, say. The first holds it; the second stops at once.
        lock = held_exclusively(run_dir / "train.lock", f"the run folder {run_dir}") if ctx.is_main else nullcontext()
        with lock:
            if resume and (run_dir / "metrics.json").is_file():
                log.info("%s already finished; remove it to retrain", run_dir)
                return json.loads((run_dir / "metrics.json").read_text())
            run = setup(cfg, ctx, resume)
            sync = partial(distributed.average_gradients, ctx) if ctx.enabled else None
            for epoch in range(run.state["epoch"] + 1, cfg.epochs + 1):
                if run.state["stale"] >= cfg.patience:
                    break
                record = run_epoch(run, epoch, sync)
                select(run, epoch, record)
            return finalize(run)
    finally:
        distributed.teardown(ctx)


def setup(cfg: TrainConfig, ctx: distributed.Context, resume: bool) -> Run:
    """Data, model, optimizers and the run folder, from scratch or from the last resume point."""
    from transformers import AutoTokenizer

    run_dir = Path(cfg.out_dir)
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
    if model_cfg.text_frozen_layers:
        model.text.memo = PrefixMemo(model.text)
    for m, encoder in model.encoders.items():
        encoder.set_normalisation(*feature_statistics(splits["train"], m))
    model.to(cfg.device)
    distributed.broadcast_state(ctx, model)  # one starting point (the text encoder is pretrained; the rest is seeded)
    tokenizer = AutoTokenizer.from_pretrained(resolve_text_encoder(model_cfg.text_encoder))
    collate = Collator(tokenizer, model_cfg.max_text_len, model_cfg.modalities)
    pretrain_report = None
    if cfg.pretrain == "tuple_nce":
        # Saved in the run folder before epoch 1, so a resumed run loads it instead of redoing it.
        if ctx.is_main:
            pretrain_report = pretrain_or_reuse(model, splits, collate, cfg, run_dir, reuse=resume)
        distributed.barrier(ctx)
        distributed.broadcast_state(ctx, model)
    opt_main, opt_mmilb = make_optimizers(model, cfg)

    state = load_resume_state(run_dir, model, opt_main, opt_mmilb, cfg.device) if resume else None
    if state is None:
        state = {"epoch": 0, "best": None, "best_epoch": 0, "stale": 0, "history": []}
    elif ctx.is_main:
        log.info("resuming %s after epoch %d", run_dir, state["epoch"])
    if ctx.is_main and state["epoch"] == 0:
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
        save_checkpoint(model, tokenizer, run_dir, {"train": {k: v for k, v in asdict(cfg).items() if k != "model"}})
        if cfg.benchmark == "featurized":
            # What the features are travels with the weights, so that export and the app
            # can refuse a front end that makes different ones.
            shutil.copyfile(Path(cfg.data_dir) / FEATURE_SPEC, run_dir / FEATURE_SPEC)
    elif ctx.is_main:
        # A kill between the two writes may have logged the lost epoch already.
        atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in state["history"]))
    log.info(
        "%s %s seed %d: %s, %d/%d/%d samples%s",
        cfg.benchmark, cfg.variant, cfg.seed, "+".join(model_cfg.modalities),
        len(splits["train"]), len(splits["valid"]), len(splits["test"]),
        f", {ctx.world_size} processes of {cfg.batch_size} rows per step" if ctx.enabled else "",
    )
    return Run(cfg, ctx, run_dir, splits, model, collate, opt_main, opt_mmilb, state, pretrain_report)


def run_epoch(run: Run, epoch: int, sync) -> dict:
    """Train one epoch and score validation; the epoch's record."""
    cfg, ctx = run.cfg, run.ctx
    start = time.perf_counter()
    # Each process draws its own dropout and modality-dropout masks (rank 0's are a plain run's).
    seed_everything(derived_seed(cfg.seed, epoch) + RANK_SEED_STRIDE * ctx.rank)
    generator = torch.Generator().manual_seed(derived_seed(cfg.seed, epoch) + RANK_SEED_STRIDE * ctx.rank)
    run.model.train()
    sums: dict[str, float] = {}
    if ctx.enabled:
        mine = [run.splits["train"][i] for i in distributed.shard(ctx, len(run.splits["train"]), cfg.seed, epoch)]
        batches = iterate_batches(mine, cfg.batch_size)
    else:
        mine, batches = run.splits["train"], iterate_batches(run.splits["train"], cfg.batch_size, generator)
    n_batches = -(-len(mine) // cfg.batch_size)
    bar = tqdm(batches, total=n_batches, desc=f"epoch {epoch}", leave=False, disable=not cfg.progress or not ctx.is_main)
    for samples in bar:
        batch = run.collate(samples)
        if cfg.modality_dropout > 0:
            batch = drop_modalities(batch, run.model.config.modalities, cfg.modality_dropout, generator)
        logs = train_step(run.model, batch.to(cfg.device), cfg, run.opt_main, run.opt_mmilb, sync)
        for k, v in logs.items():
            sums[k] = sums.get(k, 0.0) + v
        bar.set_postfix(loss=f"{logs['loss']:.3f}")
    seconds = time.perf_counter() - start
    train_means = distributed.mean_over_ranks(ctx, {k: v / n_batches for k, v in sums.items()})
    # Rank 0 scores validation and decides; every process follows its decision.
    valid = distributed.broadcast_object(ctx, evaluate(run.model, run.splits["valid"], run.collate, cfg) if ctx.is_main else None)
    record = {"epoch": epoch, "seconds": seconds}
    record.update({f"train_{k}": v for k, v in train_means.items()})
    record.update({f"valid_{k}": v for k, v in valid.items()})
    return record


def select(run: Run, epoch: int, record: dict) -> None:
    """Keep the weights if validation improved, count the epochs since it last did, and
    write the log and the resume point."""
    state = run.state
    state["history"].append(record)
    if run.ctx.is_main:  # rewritten whole: a full disk can never leave half a line
        atomic_write_text(run.dir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in state["history"]))
    loss = run.cfg.selection_loss({k.removeprefix("valid_"): v for k, v in record.items() if k.startswith("valid_")})
    if state["best"] is None or loss < state["best"]:
        state.update(best=loss, best_epoch=epoch, stale=0)
        if run.ctx.is_main:
            save_weights(run.model, run.dir / "model.safetensors")
    else:
        state["stale"] += 1
    state["epoch"] = epoch
    if run.ctx.is_main:
        save_resume_state(run.dir, run.model, run.opt_main, run.opt_mmilb, state)
        if run.model.text.memo is not None:
            run.model.text.memo.save()
    log.info(
        "epoch %d  %.1fs  loss %.4f  valid mae %.4f corr %.4f%s",
        epoch, record["seconds"], record["train_loss"], record["valid_mae"], record["valid_corr"],
        "  *" if state["best_epoch"] == epoch else "",
    )


def finalize(run: Run) -> dict:
    """The best weights with their training statistics, metrics.json and the curves; the
    resume points removed. Other ranks return {}."""
    cfg, ctx, model, run_dir, state = run.cfg, run.ctx, run.model, run.dir, run.state
    in_sync = distributed.max_parameter_difference(ctx, model)
    distributed.barrier(ctx)  # rank 0's last write is done
    if not ctx.is_main:
        return {}
    load_weights(model, run_dir / "model.safetensors", cfg.device)
    entropies = store_training_statistics(model, run.splits["train"], run.collate, cfg)
    save_weights(model, run_dir / "model.safetensors")
    history = state["history"]
    metrics = {
        "benchmark": cfg.benchmark,
        "variant": cfg.variant,
        "seed": cfg.seed,
        "modalities": list(model.config.modalities),
        # The folder name identifies a custom encoder in summaries.
        "text_encoder": encoder_label(cfg.model),
        "context": cfg.model.context,
        "best_epoch": state["best_epoch"],
        "epochs_run": len(history),
        "epoch_seconds": float(np.median([h["seconds"] for h in history])),
        "train_entropy": entropies,
        "valid": evaluate(model, run.splits["valid"], run.collate, cfg),
        "test": evaluate(model, run.splits["test"], run.collate, cfg),
    }
    if run.pretrain_report is not None:
        metrics["tuple_nce"] = run.pretrain_report
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
    try:
        train(cfg, resume=not args.no_resume)
    except NoSpaceError as e:
        raise SystemExit(f"error: {e.strerror} ({e.filename})") from None


if __name__ == "__main__":
    main()
