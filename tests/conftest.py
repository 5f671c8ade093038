"""Shared fixtures: the real data, a tiny random BERT, generated clips, a model trained and
exported on them, and the shipped model; and the test tiers.

The tiny BERT keeps training tests fast; it uses the MiniLM tokenizer, so any
text works, and it is an ordinary local Hugging Face directory, which is the
contract every text encoder has to meet.

Tiers: `pytest -m "not slow"` is the unit tier. A test is slow when its module says so
(Whisper, the browser, Triton, torchrun, MPNet, long videos) or when it uses one of
SLOW_FIXTURES (each runs Whisper, trains and exports a model, or loads the shipped one).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from model.files import data_root

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
DATA = data_root()
SHIPPED = REPO / "weights" / "mmim-clip"
SLOW_FIXTURES = {"clip_dataset", "clip_model_dir", "shipped", "fe", "fe_asr", "asr"}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: Whisper, browser, Triton, torchrun, MPNet, the shipped model, long videos")


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def mosi_dir() -> Path:
    path = DATA / "mosi"
    if not (path / "segments.csv").is_file():
        pytest.fail(f"real MOSI data not found at {path}; set MMIM_DATA to the shared data folder")
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from model.text_models import minilm_path

    path = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


# ---- the clip model: raw clips -> featurize -> train -> export (owned by the app tests) ----
# Sentences and labels for the generated clips; espeak-ng speaks the text, so words and voice agree.
CLIP_SENTENCES = [
    ("I loved this film, it was wonderful.", 2.0),
    ("What a great and happy day this is.", 2.4),
    ("The acting was brilliant and moving.", 1.6),
    ("This was a terrible and boring movie.", -2.0),
    ("I hated every minute of it.", -2.6),
    ("The plot was dull and the ending awful.", -1.4),
    ("It was fine, nothing special.", 0.0),
]


@pytest.fixture(scope="session")
def clip_dataset(tmp_path_factory) -> dict:
    """Real generated clips (espeak-ng speech, a real face photo) featurized by the front end.

    14 clips: train 8, valid 3, test 3; every third clip has no face, so the
    visual stream is sometimes absent, as it is at serving time.
    """
    import csv

    from model.featurize import FeaturizeConfig, featurize
    from model.features import FrontEndConfig
    from model.features.bench.media import make_clip

    root = tmp_path_factory.mktemp("clips")
    clips, rows = root / "clips", []
    clips.mkdir()
    modes = ["train"] * 8 + ["valid"] * 3 + ["test"] * 3
    for i, mode in enumerate(modes):
        text, label = CLIP_SENTENCES[i % len(CLIP_SENTENCES)]
        make_clip(clips / f"vid{i // 4}_{i % 4}.mp4", text=text, seconds=1.6, face=(i % 3 != 2), size=(240, 180), fps=10)
        rows.append({"video_id": f"vid{i // 4}", "clip_id": str(i % 4), "text": text, "label": label, "mode": mode})
    labels = root / "labels.csv"
    with open(labels, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["video_id", "clip_id", "text", "label", "mode"])
        writer.writeheader()
        writer.writerows(rows)
    dataset = root / "dataset"
    summary = featurize(FeaturizeConfig(clips=str(clips), labels=str(labels), out=str(dataset)), FrontEndConfig())
    return {"clips": clips, "labels": labels, "rows": rows, "dataset": dataset, "summary": summary}


@pytest.fixture(scope="session")
def clip_model_dir(tmp_path_factory, clip_dataset, tiny_bert) -> Path:
    """An exported model folder trained on `clip_dataset` (2 epochs of the tiny BERT)."""
    from export.build import build_model_folder
    from model.config import ModelConfig, TrainConfig
    from model.train import train

    root = tmp_path_factory.mktemp("clip_model")
    cfg = TrainConfig(
        benchmark="featurized", data_dir=str(clip_dataset["dataset"]), out_dir=str(root / "ckpt"), epochs=2,
        batch_size=4, num_threads=1, progress=False, modality_dropout=0.2, model=ModelConfig(text_encoder=tiny_bert),
    )
    train(cfg)
    build_model_folder(root / "ckpt", root / "model")
    return root / "model"


@pytest.fixture(scope="session")
def clip_mp4(tmp_path_factory) -> Path:
    """A 1.6 s talking-face clip (espeak-ng speech, a real face photo), 240x180 at 10 fps."""
    from model.features.bench.media import make_clip

    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=1.6, size=(240, 180), fps=10)


@pytest.fixture(scope="session")
def shipped():
    """The app's predictor over the shipped model, one per configuration: shipped(asr=False)."""
    from app.config import AppConfig
    from app.predictor import Predictor

    made = {}

    def get(**config):
        key = tuple(sorted(config.items()))
        if key not in made:
            made[key] = Predictor(SHIPPED, AppConfig(**{"threads": 1, **config}))
        return made[key]

    return get


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of a chosen size: small_disk(bytes) mounts it (again, to resize) and returns its path.
    Needs root (CI runs as root); skipped where mounting is not allowed."""
    import subprocess

    mount = tmp_path / "small_disk"
    mount.mkdir()
    mounted = []

    def resize(size: int) -> Path:
        options = f"{'remount,' if mounted else ''}size={max(4096, size)}"
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(size)
        return mount

    yield resize
    if mounted:
        subprocess.run(["umount", "-l", str(mount)], check=False)
