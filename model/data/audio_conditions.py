"""Recording conditions of real uploads, applied in code to clean speech (no downloads).

Acted studio speech (RAVDESS) is close-miked, quiet and uncompressed; what users upload
is not. Each condition maps a 16 kHz mono float32 signal to another of the same rate:

- codec:     a lossy round trip through AAC, MP3 or Opus at a low bitrate (PyAV);
- reverb:    a synthetic room impulse response (exponentially decaying noise, RT60 0.2-0.9 s);
- noise:     white, pink or brown noise at an SNR of 0-25 dB;
- level:     a gain of -25..+10 dB, clipped to [-1, 1] as a recorder would;
- telephone: 300-3400 Hz band at 8 kHz, then back to 16 kHz.

`random_conditions` draws a chain of them, so training sees combinations.
"""
from __future__ import annotations

import io

import numpy as np

from model.features.media import SAMPLE_RATE

CODECS = {"aac": ("adts", "aac", 24_000), "mp3": ("mp3", "libmp3lame", 32_000), "opus": ("ogg", "libopus", 16_000)}
CONDITIONS = ("codec", "reverb", "noise", "level", "telephone")


def codec(signal: np.ndarray, name: str = "mp3", bitrate: int = 0) -> np.ndarray:
    """Encode to `name` at `bitrate` bit/s (0: its low default) and decode back to 16 kHz."""
    import av

    container_format, encoder, default_rate = CODECS[name]
    # Opus encodes at 48 kHz only; the others take 16 kHz.
    rate = 48_000 if name == "opus" else SAMPLE_RATE
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container_format) as out:
        stream = out.add_stream(encoder, rate=rate, layout="mono")
        stream.bit_rate = bitrate or default_rate
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
        frame = av.AudioFrame.from_ndarray(signal.astype(np.float32)[None, :], format="flt", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for chunk in resampler.resample(frame) + resampler.resample(None):
            out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))
    buffer.seek(0)
    decoded = []
    with av.open(buffer, "r") as src:
        back = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        for frame in src.decode(audio=0):
            decoded += [f.to_ndarray().reshape(-1) for f in back.resample(frame)]
        decoded += [f.to_ndarray().reshape(-1) for f in back.resample(None)]
    y = np.concatenate(decoded) if decoded else np.zeros(0, np.float32)
    # Encoders add priming samples; keep the original length so nothing else moves.
    y = np.pad(y, (0, max(0, len(signal) - len(y))))[: len(signal)]
    return y.astype(np.float32)


def room_impulse(rt60: float, rng: np.random.Generator, direct: float = 0.5) -> np.ndarray:
    """Direct path plus exponentially decaying noise that falls 60 dB in rt60 seconds."""
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)  # ln(1000) = 6.9078: -60 dB
    tail *= (1 - direct) / np.sqrt(np.sum(tail**2))
    tail[0] = direct
    return tail.astype(np.float32)


def reverb(signal: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
    from scipy.signal import fftconvolve

    wet = fftconvolve(signal, room_impulse(rt60, rng))[: len(signal)]
    return _same_rms(wet, signal)


def coloured_noise(n: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise whose power falls as 1/f^k: white k=0, pink k=1, brown k=2."""
    k = {"white": 0, "pink": 1, "brown": 2}[colour]
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    spectrum[1:] /= f[1:] ** (k / 2)
    spectrum[0] = 0
    x = np.fft.irfft(spectrum, n)
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)


def add_noise(signal: np.ndarray, snr_db: float, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Noise at `snr_db` below the signal's power over its loud part (so silences do not
    count against the speech)."""
    power = _speech_power(signal)
    noise = coloured_noise(len(signal), colour, rng) * np.sqrt(power / 10 ** (snr_db / 10))
    return (signal + noise).astype(np.float32)


def level(signal: np.ndarray, gain_db: float) -> np.ndarray:
    return np.clip(signal * 10 ** (gain_db / 20), -1.0, 1.0).astype(np.float32)


def telephone(signal: np.ndarray) -> np.ndarray:
    from scipy.signal import butter, resample_poly, sosfilt

    narrow = resample_poly(signal, 1, 2)
    band = sosfilt(butter(4, (300, 3400), btype="bandpass", fs=SAMPLE_RATE // 2, output="sos"), narrow)
    return _same_rms(resample_poly(band, 2, 1)[: len(signal)], signal)


def apply(signal: np.ndarray, name: str, rng: np.random.Generator) -> np.ndarray:
    """One condition with its parameters drawn from rng."""
    if name == "codec":
        return codec(signal, str(rng.choice(list(CODECS))), int(rng.choice([12_000, 16_000, 24_000, 32_000])))
    if name == "reverb":
        return reverb(signal, float(rng.uniform(0.2, 0.9)), rng)
    if name == "noise":
        return add_noise(signal, float(rng.uniform(0, 25)), str(rng.choice(["white", "pink", "brown"])), rng)
    if name == "level":
        return level(signal, float(rng.uniform(-25, 10)))
    if name == "telephone":
        return telephone(signal)
    raise ValueError(f"unknown condition {name!r}; choose from {CONDITIONS}")


def random_conditions(signal: np.ndarray, rng: np.random.Generator, most: int = 3) -> tuple[np.ndarray, list[str]]:
    """A chain of 1..most distinct conditions in the order a recording meets them
    (room, noise, level, then the channel and the codec)."""
    names = sorted(rng.choice(CONDITIONS, size=int(rng.integers(1, most + 1)), replace=False),
                   key=("reverb", "noise", "level", "telephone", "codec").index)
    for name in names:
        signal = apply(signal, name, rng)
    return signal, list(names)


def _speech_power(signal: np.ndarray, frame: int = 400) -> float:
    frames = signal[: len(signal) // frame * frame].reshape(-1, frame)
    power = np.mean(frames**2, axis=1) if len(frames) else np.array([np.mean(signal**2)])
    loud = power[power >= np.quantile(power, 0.5)]
    return float(np.mean(loud)) + 1e-12


def _same_rms(x: np.ndarray, like: np.ndarray) -> np.ndarray:
    return (x * np.sqrt(np.mean(like**2) / (np.mean(x**2) + 1e-12))).astype(np.float32)
