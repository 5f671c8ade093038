"""The audio stream: Whisper's encoder frames over the clip's speech, mean-pooled to a fixed rate.

Whisper's encoder carries affect far better than eGeMAPS descriptors (speaker-independent
RAVDESS probe: `python -m model.features.bench.voice_probe`), and the speech recogniser computes
it anyway: one encoder pass serves the transcript and the voice. Only the speech the VAD
keeps is encoded, so a clip without speech has no audio stream at all.
"""
from __future__ import annotations

import numpy as np

VOICE_MODEL = "base"  # fixed by the feature spec: another model makes other features
ENCODER_RATE_HZ = 50.0  # one encoder frame per 20 ms
AUDIO_DIM = 512  # Whisper base's d_model
AUDIO_NAMES = tuple(f"whisper_{VOICE_MODEL}_encoder_{i:03d}" for i in range(AUDIO_DIM))


def pool(frames: np.ndarray, rate_hz: float) -> np.ndarray:
    """Mean over consecutive windows of 50 / rate_hz encoder frames; the last, partial window
    is averaged over its real frames only."""
    step = max(1, int(round(ENCODER_RATE_HZ / rate_hz)))
    n_out = -(-len(frames) // step)
    if n_out == 0:
        return np.zeros((0, frames.shape[1]), np.float32)
    pad = n_out * step - len(frames)
    sums = np.pad(frames, ((0, pad), (0, 0))).reshape(n_out, step, frames.shape[1]).sum(axis=1)
    counts = np.full((n_out, 1), step, np.float32)
    counts[-1] = step - pad
    return (sums / counts).astype(np.float32)
