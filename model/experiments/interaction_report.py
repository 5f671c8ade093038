"""Dataset-level interaction report for a trained model: `python -m model.experiments.evaluate RUN --report`.

For one split it gives
- per pair of modalities, the partial information decomposition (model/pid.py) of what
  the two modalities' own evidence says about the label: redundancy, the unique
  information of each, and synergy. A modality's evidence is the model's score with
  only that modality at its own value (the others at their training mean), discretised
  into quantile bins; the label is discretised into negative (< -0.5), neutral and
  positive (> 0.5); beside each figure, its mean with the labels shuffled (the plug-in
  estimator's bias: only what clears it is information);
- the mean |Shapley value| of each modality and the mean Shapley interaction index of
  each pair (model/shapley.py), over the rows where they are present.
It writes interactions.json and interactions.png into the output folder.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from model.experiments.pid import decompose, joint, quantile_codes

log = logging.getLogger("mmim.report")
LABEL_EDGES = (-0.5, 0.5)
NULL_SHUFFLES = 20


def label_codes(y: np.ndarray) -> np.ndarray:
    return np.searchsorted(LABEL_EDGES, y, side="right").astype(int)


def interaction_report(ckpt_dir: str | Path, split: str = "test", out_dir: str | Path | None = None, bins: int = 4,
                       data_dir: str | None = None) -> dict:
    from model.checkpoint import load_checkpoint
    from model.config import TrainConfig
    from model.data import Collator, load_splits
    from model.inference import predict

    ckpt_dir = Path(ckpt_dir)
    model, tokenizer = load_checkpoint(ckpt_dir)
    train_cfg = TrainConfig(**json.loads((ckpt_dir / "config.json").read_text())["train"])
    samples = load_splits(train_cfg.benchmark, data_dir or train_cfg.data_dir, model.config.context)[split]
    collate = Collator(tokenizer, model.config.max_text_len, model.config.modalities)
    out = predict(model, samples, collate, 64, "cpu")
    with torch.no_grad():
        diag = {k: v.numpy() for k, v in model.diagnostics(out).items()}
        coalitions = model.coalition_scores(out).numpy()
    mods = model.config.modalities
    present = {m: out[f"present_{m}"].numpy() for m in mods}
    y = np.array([s.label for s in samples])
    alone = {m: coalitions[1 << i] for i, m in enumerate(mods)}  # score from m alone

    report = {"checkpoint": str(ckpt_dir), "split": split, "n": len(samples), "bins": bins,
              "label_bins": "negative < -0.5 <= neutral <= 0.5 < positive", "units": "nats",
              "estimator": "Williams & Beer (2010) I_min PID, plug-in",
              "mean_abs_shapley": {m: float(np.abs(diag[f"shapley_{m}"][present[m]]).mean()) for m in mods},
              "pairs": {}}
    for i, a in enumerate(mods):
        for b in mods[i + 1 :]:
            rows = present[a] & present[b]
            name = f"{a}×{b}"
            if rows.sum() < 20:
                report["pairs"][name] = {"n": int(rows.sum()), "note": "too few rows with both modalities"}
                continue
            xa, xb, yc = quantile_codes(alone[a][rows], bins), quantile_codes(alone[b][rows], bins), label_codes(y[rows])
            pid = decompose(joint(xa, xb, yc))
            # Plug-in estimates are biased upwards: the same PID with the labels shuffled
            # (no real information) gives the level a value must clear to mean something.
            rng = np.random.default_rng(0)
            null = [decompose(joint(xa, xb, rng.permutation(yc))) for _ in range(NULL_SHUFFLES)]
            index = diag[f"interaction_{a}_{b}"][rows]
            report["pairs"][name] = {
                "n": int(rows.sum()), "redundancy": pid["redundancy"], f"unique_{a}": pid["unique_1"],
                f"unique_{b}": pid["unique_2"], "synergy": pid["synergy"], f"mi_{a}": pid["mi_1"], f"mi_{b}": pid["mi_2"],
                "mi_joint": pid["mi_joint"], "mean_interaction_index": float(index.mean()),
                "shuffled_label_mean": {k: float(np.mean([n[k] for n in null])) for k in ("redundancy", "synergy", "mi_joint")},
                "mean_abs_interaction_index": float(np.abs(index).mean()),
            }
    if out_dir:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "interactions.json").write_text(json.dumps(report, indent=2) + "\n")
        plot(report, out_dir / "interactions.png")
    return report


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = {k: v for k, v in report["pairs"].items() if "synergy" in v}
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    bottom = np.zeros(len(pairs))
    names = list(pairs)
    parts = [("redundancy", lambda k, v: v["redundancy"]),
             ("unique (first)", lambda k, v: v[f"unique_{k.split('×')[0]}"]),
             ("unique (second)", lambda k, v: v[f"unique_{k.split('×')[1]}"]),
             ("synergy", lambda k, v: v["synergy"])]
    for label, get in parts:
        values = np.array([max(0.0, get(k, v)) for k, v in pairs.items()])
        left.bar(names, values, bottom=bottom, label=label)
        bottom += values
    left.set_ylabel("nats about the label")
    left.set_title(f"PID per pair ({report['split']}, n = {report['n']})")
    left.legend(fontsize=8)
    shapley = report["mean_abs_shapley"]
    right.bar(list(shapley), list(shapley.values()), color="tab:gray")
    right.set_ylabel("mean |Shapley value| (score units)")
    right.set_title("Each modality's share of the score")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
