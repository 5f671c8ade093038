"""Evaluate checkpoints, and summarise multi-seed runs as mean ± std.

    python -m model.experiments.evaluate runs/mosi-std/full/seed0 --split test
    python -m model.experiments.evaluate --summarise runs/ablation --out results.md
    python -m model.experiments.evaluate runs/mosi-ctx/full/seed0 --report [--report-dir DIR]
    python -m model.experiments.evaluate RUN [RUN ...] --robustness --out robustness.json

A checkpoint knows its benchmark (config.json); `--split` picks train, valid
or test. `--summarise` reads the metrics.json of every run below a folder and
groups them by (benchmark, text encoder, variant).
"""
from __future__ import annotations

import argparse
import json
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np

from model.metrics import METRIC_NAMES, sentiment_metrics

log = logging.getLogger("mmim.evaluate")
# Metrics reported as percentages in tables, as papers do.
PERCENT = {"acc7", "acc5", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0"}


def evaluate_checkpoint(ckpt_dir: str | Path, split: str = "test", data_dir: str | None = None, device: str = "cpu") -> dict[str, float]:
    from model.checkpoint import load_checkpoint
    from model.config import TrainConfig
    from model.data import Collator, load_splits
    from model.inference import predict

    ckpt_dir = Path(ckpt_dir)
    model, tokenizer = load_checkpoint(ckpt_dir, device)
    train_cfg = TrainConfig(**json.loads((ckpt_dir / "config.json").read_text())["train"])
    samples = load_splits(train_cfg.benchmark, data_dir or train_cfg.data_dir, model.config.context)[split]
    collate = Collator(tokenizer, model.config.max_text_len, model.config.modalities)
    scores = predict(model, samples, collate, 64, device)["score"]
    return sentiment_metrics(scores.numpy(), [s.label for s in samples])


def _cell(m: dict) -> tuple:
    """(benchmark, text encoder, context, variant): the grid cell a run's metrics.json belongs to."""
    return m["benchmark"], m["text_encoder"], m.get("context", 0), m["variant"] + ("+tuple_nce" if "tuple_nce" in m else "")


def collect_runs(root: str | Path, kept: list[dict] | None = None) -> list[dict]:
    """Every run's metrics.json under root, plus the kept ones (an earlier --runs-out list: runs
    whose folders are gone, e.g. from another machine) that no run under root replaces."""
    found = [json.loads(p.read_text()) for p in sorted(Path(root).rglob("metrics.json"))]
    here = {(*_cell(m), m["seed"]) for m in found}
    return [m for m in kept or [] if (*_cell(m), m["seed"]) not in here] + found


def summarise(runs: list[dict], split: str = "test") -> list[dict]:
    """One row per (benchmark, text encoder, context, variant): mean and std over seeds."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for m in runs:
        groups[_cell(m)].append(m)
    rows = []
    for (benchmark, encoder, context, variant), runs in sorted(groups.items()):
        row = {"benchmark": benchmark, "text_encoder": encoder, "context": context, "variant": variant,
               "seeds": sorted(r["seed"] for r in runs)}
        for name in METRIC_NAMES:
            values = np.array([r[split][name] for r in runs], dtype=np.float64)
            row[name] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
        row["epoch_seconds"] = float(np.median([r["epoch_seconds"] for r in runs]))
        row["best_epoch"] = float(np.mean([r["best_epoch"] for r in runs]))
        # Training epochs only (not evaluation or pre-training), summed over the cell's runs.
        row["train_hours"] = float(sum(r["epoch_seconds"] * r["epochs_run"] for r in runs) / 3600)
        rows.append(row)
    return rows


def markdown_table(rows: list[dict]) -> str:
    head = ["benchmark", "text encoder", "context", "variant", "n"] + [
        {"mae": "MAE ↓", "corr": "Corr", "acc7": "Acc-7", "acc5": "Acc-5", "acc2_has0": "Acc-2 has0",
         "acc2_non0": "Acc-2 non0", "f1_has0": "F1 has0", "f1_non0": "F1 non0"}[n] for n in METRIC_NAMES
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["benchmark"], r["text_encoder"], str(r.get("context", 0)), r["variant"], str(len(r["seeds"]))]
        for n in METRIC_NAMES:
            scale = 100 if n in PERCENT else 1
            digits = 1 if n in PERCENT else 3
            cells.append(f"{scale * r[n]['mean']:.{digits}f} ± {scale * r[n]['std']:.{digits}f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="*", help="checkpoint directories to evaluate")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"))
    parser.add_argument("--data-dir", default=None, help="MOSI folder (default: the one the checkpoint was trained on)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--summarise", metavar="RUNS", help="folder of runs to summarise over seeds")
    parser.add_argument("--out", help="write the summary here (.md table, or .json)")
    parser.add_argument("--runs-out", help="with --summarise: also write every run's metrics.json, as one JSON list")
    parser.add_argument("--keep-runs", help="with --summarise: an earlier --runs-out list; its runs count too, "
                                            "unless a run of the same cell and seed is under RUNS")
    parser.add_argument("--report", action="store_true",
                        help="interaction report: PID per pair of modalities, mean |Shapley|, interaction indices")
    parser.add_argument("--report-dir", default=None, help="where --report writes (default: RUN/report-<split>)")
    parser.add_argument("--bins", type=int, default=4, help="quantile bins per modality for the PID")
    parser.add_argument("--robustness", action="store_true",
                        help="MAE of the checkpoints under degraded inputs, grouped by variant (model/experiments/robustness.py); "
                             "--out writes it (.json, or a .md table)")
    parser.add_argument("--workers", type=int, default=1, help="with --robustness: checkpoints measured in parallel (processes)")
    parser.add_argument("--num-threads", type=int, default=0,
                        help="torch threads (0: torch's default); 1 beside other jobs, where spinning threads slow both")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.num_threads:
        import torch

        torch.set_num_threads(args.num_threads)

    if args.robustness:
        from model.experiments.robustness import markdown, robustness

        if not args.checkpoints:
            parser.error("--robustness needs checkpoint directories")
        result = robustness(args.checkpoints, args.device, workers=args.workers, num_threads=args.num_threads)
        print(markdown(result))
        if args.out:
            out = Path(args.out)
            out.write_text(json.dumps(result, indent=2) + "\n" if out.suffix == ".json" else markdown(result))
        return
    for ckpt in args.checkpoints:
        metrics = evaluate_checkpoint(ckpt, args.split, args.data_dir, args.device)
        print(json.dumps({"checkpoint": str(ckpt), "split": args.split, **metrics}))
        if args.report:
            from model.experiments.interaction_report import interaction_report

            out = args.report_dir or Path(ckpt) / f"report-{args.split}"
            print(json.dumps(interaction_report(ckpt, args.split, out, args.bins, args.data_dir), indent=2))
    if args.summarise:
        kept = json.loads(Path(args.keep_runs).read_text()) if args.keep_runs else None
        runs = collect_runs(args.summarise, kept)
        rows = summarise(runs, args.split)
        table = markdown_table(rows)
        print(table)
        if args.out:
            out = Path(args.out)
            out.write_text(json.dumps(rows, indent=2) + "\n" if out.suffix == ".json" else table)
        if args.runs_out:
            Path(args.runs_out).write_text(json.dumps(runs, indent=2) + "\n")
    if not args.checkpoints and not args.summarise:
        parser.error("give checkpoint directories or --summarise RUNS")


if __name__ == "__main__":
    main()
