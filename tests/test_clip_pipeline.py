"""Raw clips end to end: featurize -> train (benchmark "featurized") -> export -> ONNX Runtime -> the app.

The fixtures (tests/conftest.py) build it once: 14 generated clips with real
speech (espeak-ng) and a real face photo, featurized by the front end, a tiny
BERT trained for 2 epochs, exported with its parity check.
"""
import json

import numpy as np
import pytest
import torch

from app.config import AppConfig
from app.predictor import Predictor
from export.onnx import PERCENTILE_TOLERANCE
from export.runtime import OnnxModel
from model.checkpoint import load_checkpoint
from model.data import Collator
from model.features import AUDIO_DIM, VISUAL_DIM
from model.data.featurized import load_featurized


def test_featurized_dataset_is_complete(clip_dataset):
    dataset, rows = clip_dataset["dataset"], clip_dataset["rows"]
    assert clip_dataset["summary"]["written"] == len(rows) == 14 and clip_dataset["summary"]["errors"] == 0
    for name in ("feature_spec.json", "samples.csv", "errors.csv"):
        assert (dataset / name).is_file()
    splits = load_featurized(dataset)
    assert {k: len(v) for k, v in splits.items()} == {"train": 8, "valid": 3, "test": 3}
    samples = [s for split in splits.values() for s in split]
    assert all(s.features["audio"].shape[1] == AUDIO_DIM and len(s.features["audio"]) > 0 for s in samples)
    # Every third clip was made without a face: its visual stream is absent (length 0), the rest present.
    faceless = {f"vid{i // 4}_{i % 4}" for i in range(14) if i % 3 == 2}
    for s in samples:
        assert s.features["visual"].shape[1] == VISUAL_DIM
        assert (len(s.features["visual"]) == 0) == (s.id in faceless), s.id


def test_feature_spec_travels_dataset_checkpoint_export(clip_dataset, clip_model_dir):
    spec = json.loads((clip_dataset["dataset"] / "feature_spec.json").read_text())
    ckpt = clip_model_dir.parent / "ckpt"
    assert json.loads((ckpt / "feature_spec.json").read_text()) == spec
    assert json.loads((clip_model_dir / "feature_spec.json").read_text()) == spec
    assert json.loads((clip_model_dir / "config.json").read_text())["train"]["benchmark"] == "featurized"


def test_onnx_matches_pytorch_on_the_featurized_test_split(clip_dataset, clip_model_dir):
    samples = load_featurized(clip_dataset["dataset"])["test"]
    runtime = OnnxModel(clip_model_dir, providers=["CPUExecutionProvider"], threads=1)
    got = runtime.predict(samples)
    model, tokenizer = load_checkpoint(clip_model_dir.parent / "ckpt")
    batch = Collator(tokenizer, model.config.max_text_len, model.config.modalities)(samples)
    with torch.no_grad():
        out = model(**batch.model_inputs())
        expected = {"score": out["score"], **model.diagnostics(out)}
    for name in runtime.output_names:
        atol = PERCENTILE_TOLERANCE if name.endswith("_percentile") else 1e-4
        np.testing.assert_allclose(got[name], expected[name].numpy(), atol=atol, err_msg=name)


@pytest.mark.parametrize("index", [11, 13])  # test clips: one with a face, one without
def test_app_path_scores_a_clip_as_training_did(clip_dataset, clip_model_dir, index):
    """The app decodes and featurizes the raw clip itself; its score must equal the score
    of the features stored at training time for the same clip."""
    row = clip_dataset["rows"][index]
    assert row["mode"] == "test"
    clip = clip_dataset["clips"] / f"{row['video_id']}_{row['clip_id']}.mp4"
    stored = next(s for s in load_featurized(clip_dataset["dataset"])["test"] if s.id == f"{row['video_id']}_{row['clip_id']}")
    trained = OnnxModel(clip_model_dir, providers=["CPUExecutionProvider"], threads=1).predict([stored])

    result = Predictor(clip_model_dir, AppConfig(threads=1)).predict(text=row["text"], video=clip)
    assert result["score"] == pytest.approx(float(trained["score"][0]), abs=1e-4)
    for m in ("text", "audio", "visual"):
        d = result["diagnostics"][m]
        assert d["present"] == (len(stored.features[m]) > 0 if m != "text" else True)
        if d["present"]:
            assert d["contribution"] == pytest.approx(float(trained[f"contribution_{m}"][0]), abs=1e-4)
            assert d["shapley"] == pytest.approx(float(trained[f"shapley_{m}"][0]), abs=1e-4)
            assert d["cpc"] == pytest.approx(float(trained[f"cpc_{m}"][0]), abs=1e-4)
        else:
            assert d["contribution"] == d["shapley"] == d["cpc"] == d["ba"] == "absent"
