"""Inputs for serving checks and benchmarks of an exported model folder.

A model trained on a MOSI benchmark gets that benchmark's real test samples. Any other
model (the clip model, a featurized dataset's) gets real MOSI test transcripts with
feature streams of realistic lengths for its dims: 2-6 s of voice at 10 Hz, 1-6 s of
face at 5 fps. Their values are random: latency depends on shapes, and parity holds or
fails on any input.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from model.data import BENCHMARKS, Sample, load_mosi
from model.features import AUDIO_DIM, VISUAL_DIM

FRAMES = {"audio": (20, 60), "visual": (5, 30)}


def clip_sample(text: str = "", label: float = 0.0, audio=None, visual=None) -> Sample:
    """A clip with the given modalities; the others absent (zero-length streams)."""
    audio = np.zeros((0, AUDIO_DIM), np.float32) if audio is None else audio
    visual = np.zeros((0, VISUAL_DIM), np.float32) if visual is None else visual
    return Sample("", text, label, {"audio": audio, "visual": visual})


def serving_samples(model_dir: str | Path, n: int, data_dir: str | Path, seed: int = 0) -> list[Sample]:
    config = json.loads((Path(model_dir) / "config.json").read_text())
    benchmark = config.get("train", {}).get("benchmark", "")
    if benchmark in BENCHMARKS and benchmark != "featurized":
        test = load_mosi(data_dir, benchmark, config["model"].get("context", 0))["test"]
        return [test[i % len(test)] for i in range(n)]
    model = config["model"]
    texts = [s.text for s in load_mosi(data_dir, "mosi-std")["test"]]
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        features = {m: rng.normal(size=(int(rng.integers(*FRAMES[m])), model[f"{m}_dim"])).astype(np.float32)
                    for m in model["modalities"] if m != "text"}
        samples.append(Sample(id=str(i), text=texts[int(rng.integers(len(texts)))], label=0.0, features=features))
    return samples
