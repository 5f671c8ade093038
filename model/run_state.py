"""A training run's state on disk: seeds, the resume point written after every epoch, and
the learning curves.

The resume point is state-<epoch>/ (weights and optimizer state), written first, then
resume.json pointing at it, written atomically: a kill at any moment leaves either the
previous point or the new one."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_weights, save_weights
from .files import atomic_write, atomic_write_text

RESUME_FILE = "resume.json"
# Offsets each process's random stream under torchrun; rank 0 keeps a plain run's.
RANK_SEED_STRIDE = 7_919_993


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derived_seed(seed: int, stream: int) -> int:
    """The seed of one random stream (an epoch, or an evaluation pass) of the run seeded `seed`."""
    return seed * 100_003 + stream



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
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100))
    plt.close(fig)


def save_resume_state(run_dir: Path, model, opt_main, opt_mmilb, state: dict) -> None:
    """Write state-<epoch>/ and only then point resume.json at it."""
    state_dir = run_dir / f"state-{state['epoch']}"
    state_dir.mkdir(parents=True, exist_ok=True)
    optim = {"main": opt_main.state_dict()}
    if opt_mmilb is not None:
        optim["mmilb"] = opt_mmilb.state_dict()
    try:
        save_weights(model, state_dir / "model.safetensors")
        atomic_write(state_dir / "optimizer.pt", lambda tmp: torch.save(optim, tmp))
        atomic_write_text(run_dir / RESUME_FILE, json.dumps({**state, "dir": state_dir.name}) + "\n")
    except OSError:
        shutil.rmtree(state_dir, ignore_errors=True)  # the previous resume point stays whole
        raise
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
