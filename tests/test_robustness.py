"""The robustness table: each perturbation does what it says, and the clean row is the
checkpoint's ordinary test MAE."""
import json
import shutil

import numpy as np
import pytest
import torch

from model.data import Sample
from model.experiments.robustness import (LEVELS, deletion_neighbours, markdown, memoize_text, perturb, perturb_text,
                                          robustness)


def test_asr_like_neighbours_are_one_deletion_apart():
    n = deletion_neighbours({"bear", "beer", "bar", "bore", "cat", "their", "there"})
    assert n["bear"] == ["bar", "beer"] and n["bar"] == ["bear"] and n["cat"] == []
    assert n["their"] == ["there"]  # one letter moved: the same one-deletion form "ther"
    assert "bore" not in n["bear"]  # two substitutions apart


def test_text_perturbations_hit_the_asked_share_of_words():
    rng = np.random.default_rng(0)
    text = " ".join(["bear"] * 1000)
    dropped = perturb_text(text, "text_dropout", 0.2, rng, {})
    assert len(dropped.split()) == pytest.approx(800, abs=40)
    swapped = perturb_text(text, "text_asr", 0.4, rng, {"bear": ["beer"]}).split()
    assert len(swapped) == 1000 and swapped.count("beer") == pytest.approx(400, abs=45)
    no_neighbour = perturb_text(text, "text_asr", 0.4, rng, {}).split()  # nothing to mishear it as: dropped
    assert set(no_neighbour) == {"bear"} and len(no_neighbour) == pytest.approx(600, abs=45)


def test_stream_perturbations_noise_frames_and_drop_clips():
    rng = np.random.default_rng(0)
    samples = [Sample(str(i), "fine", 0.0, {"audio": np.zeros((50, 4), np.float32)}) for i in range(400)]
    stds = {"audio": np.array([1.0, 2.0, 3.0, 4.0], np.float32)}
    noisy = perturb(samples, "audio_noise", 0.2, rng, stds, {})
    frames = np.concatenate([s.features["audio"] for s in noisy])
    hit = np.any(frames != 0, axis=1)
    assert hit.mean() == pytest.approx(0.2, abs=0.02)
    np.testing.assert_allclose(frames[hit].std(0), stds["audio"], rtol=0.05)
    missing = perturb(samples, "audio_missing", 0.4, rng, stds, {})
    assert np.mean([len(s.features["audio"]) == 0 for s in missing]) == pytest.approx(0.4, abs=0.06)
    assert all(len(s.features["audio"]) == 50 for s in samples)  # the originals are untouched


def test_clean_row_is_the_test_mae_and_every_condition_is_reported(clip_model_dir, tmp_path, monkeypatch):
    from model.experiments.evaluate import evaluate_checkpoint

    run = tmp_path / "ckpt"
    shutil.copytree(clip_model_dir.parent / "ckpt", run)
    result = robustness([run])
    (name, row), = result.items()
    assert name == "full" and row["n_checkpoints"] == 1
    assert row["mae"]["clean"]["0"] == pytest.approx(evaluate_checkpoint(run)["mae"], abs=1e-6)
    for kind in ("text_dropout", "text_asr", "audio_noise", "audio_missing", "visual_noise", "visual_missing"):
        assert set(row["mae"][kind]) >= {f"{p:g}" for p in LEVELS}
    assert {"1"} <= set(row["mae"]["text_missing"]) and {"1"} <= set(row["mae"]["audio_missing"])
    assert "| full | 1 | text_asr |" in markdown(result)

    # The draws are kept beside the weights: a second table reads them; other weights are measured anew.
    assert json.loads((run / "robustness.json").read_text())["variant"] == "full"
    in_two_processes = robustness([run, run], workers=2)
    assert in_two_processes[name]["n_checkpoints"] == 2 and in_two_processes[name]["mae"] == row["mae"]
    import model.checkpoint

    def measure(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(model.checkpoint, "load_checkpoint", measure)
    again = robustness([run, run])
    assert again[name]["n_checkpoints"] == 2 and again[name]["mae"] == row["mae"]
    with open(run / "model.safetensors", "ab") as f:
        f.write(b" ")
    with pytest.raises(AssertionError, match="measured again"):
        robustness([run])


def test_text_memo_gives_the_encoders_vector_whatever_the_padding(clip_model_dir):
    from model.checkpoint import load_checkpoint

    model, tokenizer = load_checkpoint(clip_model_dir.parent / "ckpt")
    model.eval()
    pair = tokenizer(["a fine day", "not good at all, really not good"], padding=True, return_tensors="pt")
    alone = tokenizer(["a fine day"], return_tensors="pt")
    with torch.no_grad():
        direct = model.text(pair.input_ids, pair.attention_mask)
        rows = []
        compute = model.text.forward
        model.text.forward = lambda ids, mask: rows.append(len(ids)) or compute(ids, mask)
        memoize_text(model)
        torch.testing.assert_close(model.text(pair.input_ids, pair.attention_mask), direct)
        torch.testing.assert_close(model.text(alone.input_ids, alone.attention_mask)[0], direct[0], atol=1e-5, rtol=0)
    assert rows == [2]  # the unpadded sentence came from the memo
