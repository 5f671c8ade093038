"""Acoustic features: openSMILE eGeMAPSv02 low-level descriptors, mean-pooled to a fixed rate."""
from __future__ import annotations

import threading
import warnings

import numpy as np

LLD_RATE_HZ = 100.0  # openSMILE's eGeMAPS LLD hop is 10 ms
F0_NAME = "F0semitoneFrom27.5Hz_sma3nz"
# The 25 eGeMAPSv02 LLDs in openSMILE's order, plus the share of voiced LLD frames per pooled step.
LLD_NAMES = (
    "Loudness_sma3", "alphaRatio_sma3", "hammarbergIndex_sma3", "slope0-500_sma3", "slope500-1500_sma3",
    "spectralFlux_sma3", "mfcc1_sma3", "mfcc2_sma3", "mfcc3_sma3", "mfcc4_sma3", F0_NAME,
    "jitterLocal_sma3nz", "shimmerLocaldB_sma3nz", "HNRdBACF_sma3nz", "logRelF0-H1-H2_sma3nz",
    "logRelF0-H1-A3_sma3nz", "F1frequency_sma3nz", "F1bandwidth_sma3nz", "F1amplitudeLogRelF0_sma3nz",
    "F2frequency_sma3nz", "F2bandwidth_sma3nz", "F2amplitudeLogRelF0_sma3nz", "F3frequency_sma3nz",
    "F3bandwidth_sma3nz", "F3amplitudeLogRelF0_sma3nz",
)
AUDIO_NAMES = LLD_NAMES + ("voiced_fraction",)
AUDIO_DIM = len(AUDIO_NAMES)
# Shorter than one 60 ms F0 window plus a hop: openSMILE has nothing to measure.
MIN_SECONDS = 0.1


class AudioFeaturizer:
    def __init__(self, rate_hz: float = 10.0):
        import opensmile

        self.rate_hz = rate_hz
        self.smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                     feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
        if tuple(self.smile.feature_names) != LLD_NAMES:
            raise RuntimeError(f"unexpected openSMILE eGeMAPS names: {self.smile.feature_names}")
        # One Smile object is shared; serialise calls rather than trust its internals across threads.
        self._lock = threading.Lock()

    def __call__(self, signal: np.ndarray, sample_rate: int = 16000) -> tuple[np.ndarray, dict]:
        """(T_a, AUDIO_DIM) float32 and quality {voiced_share, audio_seconds[, audio_absent_reason]}.

        voiced_share = share of 10 ms LLD frames whose F0 (semitones) is > 0,
        i.e. frames openSMILE judged voiced.
        """
        signal = np.asarray(signal, dtype=np.float32)
        if signal.ndim == 2:  # (n, channels) -> mono
            signal = signal.mean(axis=1)
        seconds = len(signal) / float(sample_rate)
        quality = {"audio_seconds": round(seconds, 3)}
        if seconds < MIN_SECONDS:
            quality.update(voiced_share=0.0, audio_absent_reason=f"audio too short ({seconds:.2f} s)")
            return np.zeros((0, AUDIO_DIM), np.float32), quality
        with self._lock, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lld = self.smile.process_signal(signal, sample_rate).to_numpy(np.float32)
        lld = np.nan_to_num(lld, nan=0.0, posinf=0.0, neginf=0.0)
        voiced = (lld[:, LLD_NAMES.index(F0_NAME)] > 0).astype(np.float32)
        quality["voiced_share"] = round(float(voiced.mean()), 4) if len(voiced) else 0.0
        step = max(1, int(round(LLD_RATE_HZ / self.rate_hz)))
        n_out = -(-len(lld) // step)
        pad = n_out * step - len(lld)
        both = np.concatenate([lld, voiced[:, None]], axis=1)
        # Mean over each window; the last, partial window is averaged over its real frames only.
        sums = np.pad(both, ((0, pad), (0, 0))).reshape(n_out, step, AUDIO_DIM).sum(axis=1)
        counts = np.full((n_out, 1), step, np.float32)
        counts[-1] = step - pad
        return (sums / counts).astype(np.float32), quality
