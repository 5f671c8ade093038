"""The voice probe: Whisper encoder features tell two voice styles apart, speaker by sentence."""
import numpy as np
import pytest

from model.features.bench.asr import ESPEAK_SENTENCES
from model.features.bench.voice_probe import featurizer, probe, tasks
from model.features.bench.media import speech

pytestmark = pytest.mark.slow  # Whisper

def test_whisper_features_separate_two_voice_styles():
    # The same sentences said low and slow vs high and fast; folds hold out whole sentences,
    # so the words cannot give the style away.
    styles = {0: dict(pitch=15, speed=130), 1: dict(pitch=85, speed=230)}
    clips = [(speech(s, **styles[k]), k, i) for i, s in enumerate(ESPEAK_SENTENCES[:8]) for k in styles]
    f = featurizer("whisper_base")
    x = np.stack([f(signal) for signal, _, _ in clips])
    y = np.array([k for _, k, _ in clips])
    groups = np.array([i for _, _, i in clips])
    assert x.shape == (16, 1024)
    result = probe(x, y, groups, held_out=groups >= 6, folds=4)
    assert result["group_kfold"] >= 0.8 and result["held_out"] >= 0.75, result


def test_probe_tasks():
    rows, y = tasks(["happy", "neutral", "angry", "calm"])["valence_2"]
    assert rows.tolist() == [True, False, True, True] and y[rows].tolist() == [1, 0, 1]
    rows, y = tasks(["happy", "neutral", "angry", "calm"])["arousal_2"]
    assert y.tolist() == [1, 0, 1, 0]
