"""Test media generators: espeak-ng speech, frames with a real face photo, muxed with PyAV.

Plain helper module: `from model.features.bench.media import make_clip, make_audio, ...`
(the suite runs as `python -m pytest`, so the repo root is importable).
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

SPEECH = "The movie was wonderful and I really enjoyed every minute of it."
VIDEO_CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx", ".avi": "mpeg4"}
AUDIO_CODECS = {".mp4": "aac", ".mov": "aac", ".mkv": "aac", ".webm": "libopus", ".avi": "libmp3lame",
                ".wav": "pcm_s16le", ".mp3": "libmp3lame", ".m4a": "aac", ".flac": "flac", ".ogg": "libopus"}
# Opus only takes these rates; the encoder is given the nearest one.
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def speech(text: str = SPEECH, sample_rate: int = 16000, voice: str = "en", speed: int = 175,
           pitch: int = 50) -> np.ndarray:
    """espeak-ng speech as float32 mono at sample_rate (speed in words per minute, pitch 0-99)."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed: apt-get install -y espeak-ng")
    import soundfile as sf
    from scipy.signal import resample_poly

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), text],
                       check=True, capture_output=True)
        x, sr = sf.read(wav, dtype="float32")
    if sr != sample_rate:
        from math import gcd

        g = gcd(sr, sample_rate)
        x = resample_poly(x, sample_rate // g, sr // g).astype(np.float32)
    return x


def _fit(signal: np.ndarray, n: int) -> np.ndarray:
    return np.pad(signal, (0, max(0, n - len(signal))))[:n]


def _face_image(tight: bool = False) -> np.ndarray:
    import skimage.data

    image = skimage.data.astronaut()  # 512x512 RGB, one frontal face at about x 176-272, y 66-162
    # tight: a head-and-shoulders square in which the face is about half the side
    return image[20:210, 130:320] if tight else image


def _place(canvas: np.ndarray, image: np.ndarray, height: int, left: int) -> None:
    import cv2

    shrink = height < image.shape[0]
    img = cv2.resize(image, (height, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    top = (canvas.shape[0] - height) // 2
    w = min(height, canvas.shape[1] - left)
    canvas[top:top + height, left:left + w] = img[:, :w]


def face_frame(size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """RGB frame (H, W, 3) with the astronaut's face, centred, on grey."""
    w, h = size
    frame = np.full((h, w, 3), 128, np.uint8)
    side = min(w, h)
    _place(frame, _face_image(), side, (w - side) // 2)
    return frame


def two_faces_frame(size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """RGB frame with two faces: a big one (left, face about 0.23 of the width) and a smaller one (right)."""
    w, h = size
    frame = np.full((h, w, 3), 128, np.uint8)
    big = min(h, int(w * 0.46))
    small = int(big * 0.66)
    _place(frame, _face_image(tight=True), big, 0)
    _place(frame, _face_image(tight=True), small, big + 16)
    return frame


def no_face_frame(size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """RGB frame of a real photo with no face in it (skimage's rocket)."""
    import cv2
    import skimage.data

    return cv2.resize(skimage.data.rocket(), size, interpolation=cv2.INTER_AREA)


def write_media(path: str | Path, *, frames=None, fps: float = 25.0,
                audio: np.ndarray | None = None, sample_rate: int = 16000) -> Path:
    """Mux RGB frames (a list or any iterable, consumed once) and/or float audio ((n,) mono or
    (n, channels)) into a file; codecs follow the extension."""
    import itertools

    import av

    path = Path(path)
    ext = path.suffix.lower()
    frames = iter(frames) if frames is not None else iter(())
    first = next(frames, None)
    with av.open(str(path), "w") as out:
        vs = as_ = None
        if first is not None:
            fps_q = Fraction(fps).limit_denominator(1000)
            vs = out.add_stream(VIDEO_CODECS[ext], rate=fps_q)
            vs.height, vs.width = first.shape[:2]
            vs.pix_fmt = "yuv420p"
            if ext == ".webm":  # libvpx's default (best quality) is far too slow for tests
                vs.options = {"deadline": "realtime", "cpu-used": "8"}
        if audio is not None:
            audio = np.asarray(audio, np.float32)
            channels = 1 if audio.ndim == 1 else audio.shape[1]
            codec = AUDIO_CODECS[ext]
            rate = min(OPUS_RATES, key=lambda r: abs(r - sample_rate)) if "opus" in codec else sample_rate
            as_ = out.add_stream(codec, rate=rate, layout="mono" if channels == 1 else "stereo")
        if vs is not None:
            for i, rgb in enumerate(itertools.chain([first], frames)):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                frame.pts = i
                frame.time_base = 1 / fps_q
                out.mux(vs.encode(frame))
            out.mux(vs.encode(None))
        if as_ is not None:
            planar = np.ascontiguousarray(audio.reshape(len(audio), -1).T)  # (channels, n)
            hop = 1024
            for i in range(0, planar.shape[1], hop):
                frame = av.AudioFrame.from_ndarray(planar[:, i:i + hop], format="fltp",
                                                   layout="mono" if planar.shape[0] == 1 else "stereo")
                frame.sample_rate, frame.pts = sample_rate, i
                frame.time_base = Fraction(1, sample_rate)
                out.mux(as_.encode(frame))
            out.mux(as_.encode(None))
    return path


def make_audio(path: str | Path, text: str | None = SPEECH, sample_rate: int = 16000, channels: int = 1,
               seconds: float | None = None) -> Path:
    """Speech (or silence when text is None) as an audio file; the format follows the extension."""
    x = speech(text, sample_rate) if text else np.zeros(int(sample_rate * (seconds or 2.0)), np.float32)
    if seconds is not None:
        x = _fit(x, int(seconds * sample_rate))
    if channels > 1:
        x = np.repeat(x[:, None], channels, axis=1)
    return write_media(path, audio=x, sample_rate=sample_rate)


def spoken_sentences(sentences: list[str], pause_s: float = 2.0, lead_s: float = 1.0,
                     sample_rate: int = 16000) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """espeak-ng sentences separated by silence, and where each is really voiced (espeak's own
    leading and trailing silence trimmed), in seconds."""
    parts, truth, t = [np.zeros(int(lead_s * sample_rate), np.float32)], [], lead_s
    for sentence in sentences:
        x = speech(sentence, sample_rate)
        voiced = np.flatnonzero(np.abs(x) > 0.02)
        x = x[voiced[0] : voiced[-1] + 1]
        truth.append((t, t + len(x) / sample_rate))
        parts += [x, np.zeros(int(pause_s * sample_rate), np.float32)]
        t += len(x) / sample_rate + pause_s
    return np.concatenate(parts), truth


def make_long_clip(path: str | Path, audio: np.ndarray, fps: float = 10.0, size: tuple[int, int] = (640, 480),
                   face: bool = True, sample_rate: int = 16000) -> Path:
    """A video as long as `audio`, written frame by frame (nothing long is held in memory)."""
    still = (face_frame if face else no_face_frame)(size)
    n = int(len(audio) / sample_rate * fps)
    frames = (np.roll(still, (i % 5) - 2, axis=1) for i in range(n))
    return write_media(path, frames=frames, fps=fps, audio=audio, sample_rate=sample_rate)


def make_clip(path: str | Path, text: str | None = SPEECH, seconds: float = 3.0, face: bool | str = True,
              audio: bool = True, size: tuple[int, int] = (640, 480), fps: float = 25.0,
              sample_rate: int = 16000, frames: int | None = None) -> Path:
    """A video clip: face=True one face, "two" two faces, False none; speech from espeak-ng
    (silence if text is None) unless audio=False. frames overrides seconds * fps."""
    still = {True: face_frame, "two": two_faces_frame, False: no_face_frame}[face](size)
    n = frames if frames is not None else max(1, int(round(seconds * fps)))
    # Move the picture a little each frame so the encoder sees real video, not one still.
    video = [np.roll(still, (i % 5) - 2, axis=1) for i in range(n)]
    sound = None
    if audio:
        n_samples = int(n / fps * sample_rate)
        sound = _fit(speech(text, sample_rate), n_samples) if text else np.zeros(n_samples, np.float32)
    return write_media(path, frames=video, fps=fps, audio=sound, sample_rate=sample_rate)
