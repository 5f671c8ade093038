"""Train the small facial-expression CNN on FER2013 and export it to ONNX.

    python -m model.features.expression.train --out weights/expression

Trains on the FER `Training` split, keeps the epoch with the best `PublicTest`
(valid) accuracy, reports `PrivateTest` (test) accuracy measured through the
exported ONNX graph, and writes fer_cnn.onnx + metrics.json.
The net is kept small (about 1.5 MB) and cheap enough to train on one CPU
thread in roughly a quarter of an hour.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from model.cli import add_dataclass_flags, dataclass_from_args
from model.features.fer import EXPRESSIONS, load_fer
from model.files import sha256

log = logging.getLogger(__name__)
SIZE = 48


@dataclass
class TrainConfig:
    out: str = "weights/expression"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    widths: tuple[int, ...] = (32, 64, 128, 256)
    dropout: float = 0.3
    label_smoothing: float = 0.1
    threads: int = 1
    seed: int = 0
    limit: int = 0  # >0: train on this many images only (smoke tests)


def build_net(widths=(32, 64, 128, 256), dropout=0.3):
    import torch
    from torch import nn

    class FerCnn(nn.Module):
        """Input (N,1,48,48) grey levels 0..255; output (N,7) probabilities.

        Per-image standardisation lives inside the graph so that the ONNX file
        is the whole contract: crops from any camera go in as raw pixels.
        """

        def __init__(self):
            super().__init__()
            layers, c_in = [], 1
            for w in widths:
                layers += [nn.Conv2d(c_in, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                           nn.MaxPool2d(2)]
                c_in = w
            self.features = nn.Sequential(*layers)
            self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in * 9, len(EXPRESSIONS)))
            self.pool = nn.AdaptiveAvgPool2d(3)

        def forward(self, x, probs: bool = True):
            mean = x.mean(dim=(2, 3), keepdim=True)
            std = x.std(dim=(2, 3), keepdim=True)
            x = (x - mean) / (std + 1.0)
            logits = self.head(self.pool(self.features(x)))
            return torch.softmax(logits, dim=1) if probs else logits

    return FerCnn()


def _augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random horizontal flip and shift by up to 4 px (edge padding)."""
    n = len(x)
    flip = rng.random(n) < 0.5
    x = np.where(flip[:, None, None], x[:, :, ::-1], x)
    pad = np.pad(x, ((0, 0), (4, 4), (4, 4)), mode="edge")
    dy, dx = rng.integers(0, 9, n), rng.integers(0, 9, n)
    return np.stack([pad[i, dy[i]:dy[i] + SIZE, dx[i]:dx[i] + SIZE] for i in range(n)])


def _accuracy(predict, x: np.ndarray, y: np.ndarray, batch: int = 512) -> float:
    hits = 0
    for i in range(0, len(x), batch):
        hits += int((predict(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return hits / max(1, len(x))


def train(cfg: TrainConfig) -> dict:
    import torch

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    data = load_fer()
    # Blank (all-black) images carry no expression; leave them out of training.
    tr = (data["split"] == "train") & (data["blank"] == 0)
    xtr, ytr = data["x"][tr], data["y"][tr]
    if cfg.limit:
        xtr, ytr = xtr[: cfg.limit], ytr[: cfg.limit]
    xva, yva = data["x"][data["split"] == "valid"], data["y"][data["split"] == "valid"]
    xte, yte = data["x"][data["split"] == "test"], data["y"][data["split"] == "test"]

    net = build_net(tuple(int(w) for w in cfg.widths), cfg.dropout)  # flags give strings
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * ((len(xtr) + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.2)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    def predict(x):
        net.eval()
        with torch.no_grad():
            return net(torch.from_numpy(x[:, None].astype(np.float32))).numpy()

    best, best_state, history = -1.0, None, []
    for epoch in range(cfg.epochs):
        t0 = time.time()
        net.train()
        order = rng.permutation(len(xtr))
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            xb = torch.from_numpy(_augment(xtr[idx], rng)[:, None].astype(np.float32))
            loss = loss_fn(net(xb, probs=False), torch.from_numpy(ytr[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        acc = _accuracy(predict, xva, yva)
        history.append({"epoch": epoch + 1, "valid_acc": acc, "seconds": time.time() - t0})
        log.info("epoch %d valid acc %.4f (%.0f s)", epoch + 1, acc, time.time() - t0)
        if acc > best:
            best, best_state = acc, {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    net.eval()

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "fer_cnn.onnx"
    torch.onnx.export(net, torch.zeros(1, 1, SIZE, SIZE), str(onnx_path), input_names=["face"],
                      output_names=["probs"], dynamic_axes={"face": {0: "n"}, "probs": {0: "n"}},
                      opset_version=17, dynamo=False)
    # Measure test accuracy through the exported graph: that is what the app runs.
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_predict = lambda x: sess.run(None, {"face": x[:, None].astype(np.float32)})[0]  # noqa: E731
    metrics = {
        "classes": list(EXPRESSIONS),
        "input": "(N,1,48,48) float32 grey 0..255, face crop framed like FER2013",
        "train_images": int(len(xtr)),
        "valid_acc_best": best,
        "valid_acc_onnx": _accuracy(onnx_predict, xva, yva),
        "test_acc_private": _accuracy(onnx_predict, xte, yte),
        "test_images": int(len(xte)),
        "onnx_bytes": onnx_path.stat().st_size,
        "onnx_sha256": sha256(onnx_path),
        "history": history,
        "config": asdict(cfg),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    log.info("PrivateTest accuracy %.4f; wrote %s", metrics["test_acc_private"], onnx_path)
    return metrics


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_flags(parser, TrainConfig)
    cfg = dataclass_from_args(TrainConfig, parser.parse_args(argv))
    metrics = train(cfg)
    print(json.dumps({k: metrics[k] for k in ("valid_acc_best", "test_acc_private", "onnx_bytes")}))


if __name__ == "__main__":
    main()
