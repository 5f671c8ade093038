"""MOSI benchmark splits and the collate."""
import numpy as np
import pytest

from model.data import BENCHMARKS, Collator, Sample, feature_statistics, load_mosi


def test_mosi_std_folds(mosi_dir):
    splits = load_mosi(mosi_dir, "mosi-std")
    assert {k: len(v) for k, v in splits.items()} == {"train": 1284, "valid": 229, "test": 686}
    s = splits["train"][0]
    assert set(s.features) == {"audio"}  # video is left out: it leaks labels on this split
    assert s.features["audio"].shape == (1, 73)
    assert s.text == s.text.lower() and -3 <= s.label <= 3


def test_mosi_ctx_valid_is_carved_by_whole_videos(mosi_dir):
    splits = load_mosi(mosi_dir, "mosi-ctx")
    assert len(splits["train"]) + len(splits["valid"]) == 1447 and len(splits["test"]) == 752
    video = lambda s: s.id.rsplit("_", 1)[0]  # noqa: E731
    train_videos = {video(s) for s in splits["train"]}
    valid_videos = {video(s) for s in splits["valid"]}
    assert not train_videos & valid_videos
    assert len(valid_videos) == round(0.15 * 62)
    assert set(splits["test"][0].features) == {"audio", "visual"}
    # Seed-independent: the same split every time.
    assert [s.id for s in load_mosi(mosi_dir, "mosi-ctx")["valid"]] == [s.id for s in splits["valid"]]


def test_unknown_benchmark(mosi_dir):
    with pytest.raises(ValueError, match="choose from"):
        load_mosi(mosi_dir, "mosei")
    assert set(BENCHMARKS) == {"mosi-std", "mosi-ctx", "featurized"}


def test_collate_pads_and_keeps_lengths(tiny_bert):
    from transformers import AutoTokenizer

    samples = [
        Sample("a", "good", 1.0, {"audio": np.ones((3, 2), np.float32)}),
        Sample("b", "a much longer and rather bad sentence", -2.0, {"audio": 2 * np.ones((1, 2), np.float32)}),
    ]
    batch = Collator(AutoTokenizer.from_pretrained(tiny_bert), 5, ("text", "audio"))(samples)
    assert batch.input_ids.shape == (2, 5)  # truncated to max_text_len
    assert batch.audio.shape == (2, 3, 2)
    assert batch.audio_lengths.tolist() == [3, 1]
    assert batch.audio[1, 1:].abs().sum() == 0
    assert batch.labels.tolist() == [1.0, -2.0]
    assert batch.visual is None


def test_feature_statistics_pool_every_frame():
    samples = [Sample("a", "", 0, {"audio": np.array([[0.0], [2.0]], np.float32)}), Sample("b", "", 0, {"audio": np.array([[4.0]], np.float32)})]
    mean, std = feature_statistics(samples, "audio")
    assert mean.item() == pytest.approx(2.0) and std.item() == pytest.approx(np.std([0, 2, 4]))
