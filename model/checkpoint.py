"""Checkpoints: config.json + model.safetensors (+ the text encoder's config and
tokenizer in text_encoder/), so a checkpoint directory is self-contained and
nothing is ever unpickled.
"""
from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .config import ModelConfig
from .files import FEATURE_SPEC, atomic_dir, atomic_write, atomic_write_text
from .mmim import MMIM

TEXT_ENCODER_DIR = "text_encoder"



def save_weights(model: torch.nn.Module, path: Path) -> None:
    # Copies, because cuDNN packs LSTM weights into one shared buffer, which
    # safetensors refuses to write as separate tensors.
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, tmp))


# Buffers added after checkpoints were first written; an older checkpoint lacks them and
# keeps their NaN defaults (its diagnostics then have no percentiles).
OPTIONAL_BUFFERS = ("ba_quantiles", "cpc_quantiles")


def load_weights(model: torch.nn.Module, path: Path, device: str = "cpu") -> None:
    """Strict load, but for OPTIONAL_BUFFERS; copies into the existing tensors, which also
    works for cuDNN's packed LSTM weights."""
    missing, unexpected = model.load_state_dict(load_file(str(path), device=device), strict=False)
    missing = [k for k in missing if not k.endswith(OPTIONAL_BUFFERS)]
    if missing or unexpected:
        raise RuntimeError(f"{path} does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")


def save_checkpoint(model: MMIM, tokenizer, out_dir: Path, extra_config: dict | None = None) -> None:
    """Write the config, the text encoder's config and tokenizer, and the weights."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    def write_text_encoder(folder: Path) -> None:
        tokenizer.save_pretrained(folder)
        model.text.bert.config.save_pretrained(folder)

    atomic_dir(out_dir / TEXT_ENCODER_DIR, write_text_encoder)
    # Point at the copy inside the checkpoint, not at the machine it was trained on.
    config = {"model": asdict(replace(model.config, text_encoder=TEXT_ENCODER_DIR))}
    config.update(extra_config or {})
    atomic_write_text(out_dir / "config.json", json.dumps(config, indent=2) + "\n")
    save_weights(model, out_dir / "model.safetensors")


def read_model_config(ckpt_dir: Path) -> ModelConfig:
    ckpt_dir = Path(ckpt_dir)
    config = ModelConfig(**json.loads((ckpt_dir / "config.json").read_text())["model"])
    config.text_encoder = str(ckpt_dir / config.text_encoder)
    return config


def load_checkpoint(ckpt_dir: Path, device: str = "cpu"):
    """(model in eval mode, tokenizer) from a checkpoint directory."""
    from transformers import AutoTokenizer

    ckpt_dir = Path(ckpt_dir)
    config = read_model_config(ckpt_dir)
    model = MMIM(config, pretrained_text=False)
    load_weights(model, ckpt_dir / "model.safetensors", device)
    model.to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(config.text_encoder)
    return model, tokenizer
