"""Shared fixtures: the real MOSI data folder and a tiny random BERT.

The tiny BERT keeps training tests fast; it uses the MiniLM tokenizer, so any
text works, and it is an ordinary local Hugging Face directory, which is the
contract every text encoder has to meet.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MMIM_DATA", REPO.parent / "shared" / "data"))


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

    from model.encoders import default_text_encoder_path

    path = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = AutoTokenizer.from_pretrained(default_text_encoder_path())
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
