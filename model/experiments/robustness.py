"""How checkpoints hold up when their inputs degrade at test time, in the style of OpenVNA
(Mao et al., 2024): MAE against the level of each perturbation.

    python -m model.experiments.evaluate RUN [RUN ...] --robustness [--out robustness.json]

Perturbations, each at LEVELS (the share of words, frames or clips hit), seeded:
- text_dropout:    each word dropped;
- text_asr:        each word replaced by an ASR-like error, a word of the benchmark's own
                   transcripts spelled within one deletion of it (bear/beer, their/there), or
                   dropped when there is none;
- <m>_noise:       Gaussian noise of one training-set std added to each frame of stream m;
- <m>_missing:     the clip loses stream m (a zero-length sequence).
Plus each whole modality missing (level 1.0). Checkpoints are grouped by variant (text only,
MMIM alpha = beta = 0, MMIM, MMIM + TupleInfoNCE); each cell is the mean over the group's
checkpoints and REPEATS draws. Each checkpoint's draws are kept in RUN/robustness.json.
"""
from __future__ import annotations

import json
import logging
import re
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from model.metrics import sentiment_metrics

LEVELS = (0.1, 0.2, 0.4)
REPEATS = 2
WORD = re.compile(r"[A-Za-z']+")
log = logging.getLogger("mmim.robustness")


def deletion_neighbours(vocabulary: set[str]) -> dict[str, list[str]]:
    """word -> other words of the vocabulary one deletion away from it or from which it is one
    deletion away, or sharing a one-deletion form (a substituted or swapped letter)."""
    forms: dict[str, set[str]] = defaultdict(set)
    for word in vocabulary:
        for form in {word} | {word[:i] + word[i + 1 :] for i in range(len(word))}:
            forms[form].add(word)
    out = {}
    for word in vocabulary:
        near = set().union(*(forms[f] for f in {word} | {word[:i] + word[i + 1 :] for i in range(len(word))}))
        out[word] = sorted(near - {word})
    return out


def perturb_text(text: str, kind: str, p: float, rng: np.random.Generator, neighbours: dict[str, list[str]]) -> str:
    words = text.split()
    kept = []
    for word in words:
        if rng.random() >= p:
            kept.append(word)
        elif kind == "text_asr":
            key = word.lower().strip(".,!?;:\"")
            if neighbours.get(key):
                kept.append(neighbours[key][rng.integers(len(neighbours[key]))])
    return " ".join(kept)


def perturb(samples, kind: str, p: float, rng: np.random.Generator, stds: dict[str, np.ndarray], neighbours):
    out = []
    for s in samples:
        features, text = dict(s.features), s.text
        if kind.startswith("text_") and kind != "text_missing":
            text = perturb_text(text, kind, p, rng, neighbours)
        elif kind == "text_missing":
            text = ""
        else:
            m, what = kind.split("_")
            x = features[m]
            if what == "noise":
                hit = rng.random(len(x)) < p
                x = x + hit[:, None] * rng.normal(size=x.shape).astype(np.float32) * stds[m]
            elif what == "missing" and rng.random() < p:
                x = x[:0]
            features[m] = x.astype(np.float32)
        out.append(replace(s, text=text, features=features))
    return out


def conditions(modalities: tuple[str, ...]) -> list[tuple[str, float]]:
    kinds = ["text_dropout", "text_asr"] + [f"{m}_{w}" for m in modalities if m != "text" for w in ("noise", "missing")]
    return [("clean", 0.0)] + [(k, p) for k in kinds for p in LEVELS] + \
        [(f"{m}_missing", 1.0) for m in modalities if m != "text"] + [("text_missing", 1.0)]


def variant_name(metrics: dict) -> str:
    return metrics["variant"] + ("+tuple_nce" if "tuple_nce" in metrics else "")


def memoize_text(model) -> None:
    """Eval only: keep the text encoder's vector per token sequence. Most conditions leave
    the words alone, and the text encoder is most of a pass; padding does not change a
    row's vector (padded keys are masked), so the key is the real tokens."""
    import torch

    encoder, memo = model.text, {}
    compute = encoder.forward

    def forward(input_ids, attention_mask):
        lengths = attention_mask.sum(1).tolist()
        keys = [input_ids[i, :n].cpu().numpy().tobytes() for i, n in enumerate(lengths)]
        missing = [i for i, k in enumerate(keys) if k not in memo]
        if missing:
            width = max(lengths[i] for i in missing)
            rows = torch.tensor(missing, device=input_ids.device)
            fresh = compute(input_ids[rows, :width], attention_mask[rows, :width])
            for j, i in enumerate(missing):
                memo[keys[i]] = fresh[j]
        return torch.stack([memo[k] for k in keys])

    encoder.forward = forward


def checkpoint_robustness(ckpt: str | Path, device: str = "cpu", seed: int = 0, num_threads: int = 0) -> dict:
    """{"variant", "mae": {condition: {level: [MAE per draw]}}} for one checkpoint. Kept in
    RUN/robustness.json beside the weights it was measured on, so an interrupted table
    resumes and a second table over the same checkpoints costs nothing."""
    import torch

    from model.checkpoint import load_checkpoint
    from model.config import TrainConfig
    from model.data import Collator, load_splits
    from model.files import atomic_write_text, sha256
    from model.inference import predict
    from model.text_prefix import PrefixMemo

    ckpt = Path(ckpt)
    key = {"seed": seed, "levels": list(LEVELS), "repeats": REPEATS, "weights": sha256(ckpt / "model.safetensors")}
    cached = ckpt / "robustness.json"
    if cached.is_file():
        kept = json.loads(cached.read_text())
        if kept.get("key") == key:
            return kept
    if num_threads:
        torch.set_num_threads(num_threads)
    start = time.perf_counter()
    model, tokenizer = load_checkpoint(ckpt, device)
    if model.config.text_frozen_layers:  # what the frozen layers give each sentence is computed once
        model.text.memo = PrefixMemo(model.text)
    memoize_text(model)
    train_cfg = TrainConfig(**json.loads((ckpt / "config.json").read_text())["train"])
    splits = load_splits(train_cfg.benchmark, train_cfg.data_dir, model.config.context)
    vocabulary = {w.lower() for s in splits["train"] for w in WORD.findall(s.text)}
    neighbours = deletion_neighbours(vocabulary)
    streams = [m for m in model.config.modalities if m != "text"]
    stds = {m: np.concatenate([s.features[m] for s in splits["train"]]).std(0).astype(np.float32) for m in streams}
    collate = Collator(tokenizer, model.config.max_text_len, model.config.modalities)
    test = splits["test"]
    labels = [s.label for s in test]
    mae: dict[str, dict[str, list[float]]] = {}
    for kind, p in conditions(model.config.modalities):
        repeats = 1 if kind == "clean" or p == 1.0 else REPEATS
        for r in range(repeats):
            rng = np.random.default_rng([seed, r, int(p * 100), sum(map(ord, kind))])
            samples = test if kind == "clean" else perturb(test, kind, p, rng, stds, neighbours)
            scores = predict(model, samples, collate, 64, device)["score"].numpy()
            mae.setdefault(kind, {}).setdefault(f"{p:g}", []).append(float(sentiment_metrics(scores, labels)["mae"]))
    result = {"key": key, "variant": variant_name(json.loads((ckpt / "metrics.json").read_text())),
              "seconds": round(time.perf_counter() - start, 1), "mae": mae}
    atomic_write_text(cached, json.dumps(result, indent=1) + "\n")
    return result


def robustness(checkpoints: list[str | Path], device: str = "cpu", seed: int = 0, workers: int = 1,
               num_threads: int = 0) -> dict:
    """{variant: {"n_checkpoints", "mae": {condition: {level: mean MAE}}}}: each cell is the
    mean over the variant's checkpoints and their draws."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from contextlib import nullcontext

    columns = zip(*[(c, device, seed, num_threads) for c in checkpoints])
    cells: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    counts: dict[str, int] = defaultdict(int)
    # spawn, not fork: a forked child cannot start CUDA.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if workers > 1 else nullcontext() as pool:
        measure = pool.map if pool else map
        for ckpt, result in zip(checkpoints, measure(checkpoint_robustness, *columns)):
            log.info("%s: %s, measured in %.0f s", ckpt, result["variant"], result["seconds"])
            counts[result["variant"]] += 1
            for kind, levels in result["mae"].items():
                for level, values in levels.items():
                    cells[result["variant"]][kind][level].extend(values)
    return {name: {"n_checkpoints": counts[name],
                   "mae": {kind: {level: float(np.mean(v)) for level, v in levels.items()} for kind, levels in table.items()}}
            for name, table in cells.items()}


def markdown(result: dict) -> str:
    """One row per (variant, perturbation), one column per level."""
    levels = ["0"] + [f"{p:g}" for p in LEVELS] + ["1"]
    lines = ["| variant | n | perturbation | " + " | ".join(f"{float(x):.0%}" for x in levels) + " |",
             "|---|---|---|" + "---|" * len(levels)]
    for name, row in result.items():
        clean = row["mae"]["clean"]["0"]
        for kind, values in row["mae"].items():
            if kind == "clean":
                continue
            cells = [f"{clean:.3f}" if x == "0" else f"{values[x]:.3f}" if x in values else "" for x in levels]
            lines.append(f"| {name} | {row['n_checkpoints']} | {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
