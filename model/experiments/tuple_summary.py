"""Summarise TupleInfoNCE against plain runs: RUNS_DIR/<arm>/seed<N>/ into mean ± std per arm,
the paired differences per seed, and the mean |contribution| of each modality.

    python -m model.experiments.tuple_summary runs/tnce --out model/experiments/results/tuple_nce_mosi_ctx.json
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from model.checkpoint import load_checkpoint
from model.data import Collator, load_mosi
from model.inference import predict


def run_contributions(run_dir: Path, split: str = "test") -> dict[str, float]:
    """Mean |contribution_m| (MMIM.diagnostics) of a finished run on a split; cached in
    the run folder because it needs a pass of the text encoder."""
    cache = run_dir / f"contributions_{split}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    train_cfg = json.loads((run_dir / "config.json").read_text())["train"]
    model, tokenizer = load_checkpoint(run_dir)
    samples = load_mosi(train_cfg["data_dir"], train_cfg["benchmark"])[split]
    collate = Collator(tokenizer, model.config.max_text_len, model.config.modalities)
    with torch.no_grad():
        out = predict(model, samples, collate, 64, "cpu")
        diag = model.diagnostics(out)
    result = {m: float(diag[f"contribution_{m}"].abs().mean()) for m in model.config.modalities}
    cache.write_text(json.dumps(result) + "\n")
    return result


def _mean_std(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": len(a)}


def summarise(runs_dir: Path) -> dict:
    """mean +- std per arm (runs_dir/<arm>/seed<N>/metrics.json) of test MAE, Corr,
    Acc-2 non0, mean |contribution| per modality, and A^k (pre-trained arms)."""
    runs_dir = Path(runs_dir)
    arms = {}
    for arm_dir in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        runs = sorted(p.parent for p in arm_dir.glob("seed*/metrics.json"))
        if not runs:
            continue
        rows = []
        for run in runs:
            metrics = json.loads((run / "metrics.json").read_text())
            row = {
                "seed": metrics["seed"],
                **{k: metrics["test"][k] for k in ("mae", "corr", "acc2_non0")},
                **{f"contribution_{m}": v for m, v in run_contributions(run).items()},
            }
            tnce = metrics.get("tuple_nce")
            if tnce:
                row.update({f"A_test_{m}": v for m, v in tnce["A_test"].items()})
                row.update({f"A_valid_{m}": v for m, v in tnce["A_valid"].items()})
                row.update({f"A_valid_before_{m}": v for m, v in tnce["A_valid_before"].items()})
                row["pretrain_seconds"] = tnce["seconds"]
                row["mu"] = tnce["mu"]
            rows.append(row)
        keys = [k for k in rows[0] if k not in ("seed", "mu")]
        arms[arm_dir.name] = {
            "seeds": [r["seed"] for r in rows],
            "summary": {k: _mean_std([r[k] for r in rows]) for k in keys},
            "runs": rows,
        }
    return {"runs_dir": str(runs_dir), "split": "test", "arms": arms, "paired": paired_deltas(arms)}


def paired_deltas(arms: dict, base: str = "plain", treated: str = "tnce") -> dict:
    """treated - base per seed, over the seeds both arms finished (same seed = same
    fusion initialisation and batch order; only the encoders' starting point differs)."""
    if base not in arms or treated not in arms:
        return {}
    by_seed = {name: {r["seed"]: r for r in arms[name]["runs"]} for name in (base, treated)}
    seeds = sorted(set(by_seed[base]) & set(by_seed[treated]))
    if not seeds:
        return {}
    keys = [k for k in arms[base]["summary"] if k in arms[treated]["summary"]]
    return {
        "seeds": seeds,
        **{k: _mean_std([by_seed[treated][s][k] - by_seed[base][s][k] for s in seeds]) for k in keys},
    }


def markdown_table(summary: dict) -> str:
    arms = summary["arms"]
    cols = ["mae", "corr", "acc2_non0", "contribution_text", "contribution_audio", "contribution_visual",
            "A_test_text", "A_test_audio", "A_test_visual"]
    head = "| arm | seeds | " + " | ".join(cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 2)]
    for name, arm in arms.items():
        cells = []
        for c in cols:
            s = arm["summary"].get(c)
            cells.append(f"{s['mean']:.3f} ± {s['std']:.3f}" if s else "–")
        lines.append(f"| {name} | {len(arm['seeds'])} | " + " | ".join(cells) + " |")
    paired = summary.get("paired")
    if paired:
        cells = [f"{paired[c]['mean']:+.3f} ± {paired[c]['std']:.3f}" if c in paired else "–" for c in cols]
        lines.append(f"| tnce − plain (paired) | {len(paired['seeds'])} | " + " | ".join(cells) + " |")
    for name, arm in arms.items():
        rows = [k for k in arm["summary"] if k.startswith("A_") or k == "pretrain_seconds"]
        if rows:
            lines += ["", f"| {name}: TupleInfoNCE | mean ± std |", "|---|---|"]
            lines += [f"| {k} | {arm['summary'][k]['mean']:.3f} ± {arm['summary'][k]['std']:.3f} |" for k in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Summarise TupleInfoNCE vs plain runs: RUNS_DIR/<arm>/seed<N>/")
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("--out", type=Path, help="write the summary JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    summary = summarise(args.runs_dir)
    text = json.dumps(summary, indent=2) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(markdown_table(summary))


if __name__ == "__main__":
    main()
