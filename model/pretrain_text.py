"""Pretrain the text encoder on sentence-level sentiment corpora.

    python -m model.pretrain_text --out-dir runs/minilm-sentiment
    python -m model.train --text-encoder runs/minilm-sentiment ...

Regresses the [CLS] vector onto the [-3, 3] scale of SST (`label_pm3`) and the
VADER movie snippets (`label_pm3`), and optionally MOSI's standard training fold
(`--mosi-copies N` adds it N times), then saves the encoder of the epoch with the
best validation MAE (on `--select-on`, else the mean over corpora) as an ordinary
Hugging Face directory, which MMIM takes like any other text encoder. MR is left
out: it has polarity only, and its sentences are VADER's. VADER rows whose
sentence is in SST's test split are dropped.

With `--frozen-layers k` the embeddings and lower k layers stay fixed and their
outputs are computed once (model/text_prefix.py): the way to fine-tune MPNet on a CPU.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .cli import add_dataclass_flags, dataclass_from_args
from .encoders import TextEncoder
from .files import data_root
from .text_models import resolve_text_encoder
from .data import load_mosi
from .metrics import sentiment_metrics
from .run_state import seed_everything
from .text_prefix import PrefixMemo

log = logging.getLogger("mmim.pretrain_text")


@dataclass
class PretrainConfig:
    data_dir: str = ""  # "": data_root()/text (model/files.py)
    text_encoder: str = ""
    out_dir: str = "runs/minilm-sentiment"
    epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 1e-4
    max_text_len: int = 50
    seed: int = 0
    device: str = "cpu"
    num_threads: int = 0
    progress: bool = True
    limit: int = 0  # >0 keeps the first N rows of each split (smoke runs)
    corpora: tuple[str, ...] = ("sst", "vader_movie_snippets")
    mosi_copies: int = 0  # MOSI's standard folds join the corpora, its training fold this many times
    select_on: str = ""  # the corpus whose validation MAE picks the epoch; "": the mean over corpora
    frozen_layers: int = 0


def load_corpora(data_dir: str | Path, corpora=("sst", "vader_movie_snippets"),
                 mosi_copies: int = 0) -> dict[str, list[tuple[str, float, str]]]:
    """split -> [(text, label on [-3, 3], corpus)]."""
    splits: dict[str, list] = {"train": [], "valid": [], "test": []}
    if mosi_copies:
        for split, samples in load_mosi(Path(data_dir).parent / "mosi", "mosi-std").items():
            splits[split] += [(s.text, s.label, "mosi") for s in samples] * (mosi_copies if split == "train" else 1)
    for corpus in corpora:
        with open(Path(data_dir) / f"{corpus}.csv", newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row.get("sst_split") == "test":
                    continue
                splits[row["split"]].append((row["text"], float(row["label_pm3"]), corpus))
    return splits


class SentimentRegressor(nn.Module):
    def __init__(self, text_encoder: str, frozen_layers: int = 0):
        super().__init__()
        self.encoder = TextEncoder(text_encoder, frozen_layers=frozen_layers)
        self.head = nn.Linear(self.encoder.out_dim, 1)

    def forward(self, input_ids, attention_mask):
        return self.head(self.encoder(input_ids, attention_mask)).squeeze(-1)


@torch.no_grad()
def evaluate(model, tokenizer, rows, cfg: PretrainConfig) -> dict[str, dict[str, float]]:
    model.eval()
    preds = []
    for start in range(0, len(rows), 128):
        chunk = rows[start : start + 128]
        tokens = tokenizer([r[0] for r in chunk], padding=True, truncation=True, max_length=cfg.max_text_len, return_tensors="pt").to(cfg.device)
        preds.append(model(tokens["input_ids"], tokens["attention_mask"]).clamp(-3, 3).cpu())
    model.train()
    preds = torch.cat(preds).numpy()
    out = {}
    for corpus in sorted({r[2] for r in rows}):
        idx = np.array([r[2] == corpus for r in rows])
        m = sentiment_metrics(preds[idx], [r[1] for r in rows if r[2] == corpus])
        out[corpus] = {"mae": m["mae"], "corr": m["corr"], "acc2_non0": m["acc2_non0"]}
    return out


def pretrain(cfg: PretrainConfig) -> dict:
    from transformers import AutoTokenizer

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    splits = load_corpora(cfg.data_dir or data_root() / "text", cfg.corpora, cfg.mosi_copies)
    if cfg.limit:
        splits = {k: v[: cfg.limit] for k, v in splits.items()}
    tokenizer = AutoTokenizer.from_pretrained(resolve_text_encoder(cfg.text_encoder))
    model = SentimentRegressor(cfg.text_encoder, cfg.frozen_layers).to(cfg.device)
    if cfg.frozen_layers:
        model.encoder.memo = PrefixMemo(model.encoder)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(cfg.seed)
    train_rows = splits["train"]
    best, best_epoch, history = None, 0, []
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        order = torch.randperm(len(train_rows), generator=generator).tolist()
        batches = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
        for idx in tqdm(batches, desc=f"epoch {epoch}", leave=False, disable=not cfg.progress):
            chunk = [train_rows[i] for i in idx]
            tokens = tokenizer([r[0] for r in chunk], padding=True, truncation=True, max_length=cfg.max_text_len, return_tensors="pt").to(cfg.device)
            labels = torch.tensor([r[1] for r in chunk], device=cfg.device)
            loss = nn.functional.l1_loss(model(tokens["input_ids"], tokens["attention_mask"]), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        valid = evaluate(model, tokenizer, splits["valid"], cfg)
        if model.encoder.memo is not None:
            model.encoder.memo.save()
        mean_mae = valid[cfg.select_on]["mae"] if cfg.select_on else float(np.mean([v["mae"] for v in valid.values()]))
        history.append({"epoch": epoch, "seconds": time.perf_counter() - start, "valid": valid})
        log.info("epoch %d  %.0fs  valid %s", epoch, history[-1]["seconds"], json.dumps(valid))
        if best is None or mean_mae < best:
            best, best_epoch = mean_mae, epoch
            # The encoder alone, as a plain Hugging Face directory; the head is not needed downstream.
            model.encoder.bert.save_pretrained(out_dir)
            tokenizer.save_pretrained(out_dir)
    metrics = {"config": asdict(cfg), "history": history, "best_epoch": best_epoch, "best_valid_mae": best}
    (out_dir / "pretrain_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_flags(parser, PretrainConfig)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    pretrain(dataclass_from_args(PretrainConfig, args))


if __name__ == "__main__":
    main()
