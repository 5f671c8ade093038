"""Decode any container FFmpeg reads (through PyAV) into 16 kHz mono audio and sampled RGB frames.

Everything happens in memory from the given path: no temp files, so
concurrent calls cannot collide.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from model.features.errors import FeatureError
from model.features.media import SAMPLE_RATE, describe

log = logging.getLogger(__name__)
MAX_BAD_PACKETS = 50


@dataclass
class Decoded:
    audio: np.ndarray | None           # (n,) float32 at 16 kHz mono; None: no audio stream
    frames: list[np.ndarray] | None    # HxWx3 uint8 RGB sampled at video_fps; None: no video stream
    duration_s: float
    info: dict = field(default_factory=dict)


def _check_file(path: Path, max_bytes: int) -> None:
    if not path.is_file():
        raise FeatureError(f"{path.name}: file not found; give the path of an existing media file")
    size = path.stat().st_size
    if size == 0:
        raise FeatureError(f"{path.name}: the file is empty (0 bytes); upload the file again")
    if size > max_bytes:
        raise FeatureError(
            f"{path.name}: the file is {size / 2**20:.1f} MiB, over the {max_bytes / 2**20:.0f} MiB limit; "
            "upload a shorter or more compressed clip")


def _too_long(path: Path, seconds: float, limit: float) -> FeatureError:
    return FeatureError(f"{path.name}: the clip lasts {seconds:.1f} s, over the {limit:.0f} s limit; "
                        "cut it into shorter clips")


def _scaled_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    # Even sizes keep swscale happy with chroma-subsampled sources.
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


class _AudioSink:
    """Audio frames resampled to 16 kHz mono float32 as they come."""

    def __init__(self, av):
        self.av = av
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        self.chunks: list[np.ndarray] = []

    def add(self, frame) -> None:
        try:
            outs = self.resampler.resample(frame)
        except ValueError:
            # The stream changed rate or layout mid-file: start a fresh resampler.
            self.resampler = self.av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            outs = self.resampler.resample(frame)
        self.chunks += [out.to_ndarray().reshape(-1) for out in outs]

    def finish(self) -> np.ndarray:
        try:
            self.chunks += [out.to_ndarray().reshape(-1) for out in self.resampler.resample(None)]
        except self.av.error.FFmpegError:
            pass
        return np.concatenate(self.chunks).astype(np.float32) if self.chunks else np.zeros(0, np.float32)


class _FrameSampler:
    """Video frames sampled at a fixed rate whatever the source frame rate, scaled so the long
    side is at most max_side; kept, or handed to on_frame and dropped."""

    def __init__(self, fps: float, max_side: int, on_frame):
        self.fps, self.max_side, self.on_frame = fps, max_side, on_frame
        self.next_t, self.size, self.sampled = 0.0, None, 0
        self.frames: list[np.ndarray] = []

    def add(self, frame, t: float) -> None:
        if t + 1e-6 < self.next_t:
            return
        self.next_t = max(self.next_t + 1.0 / self.fps, t)
        if self.size is None:
            self.size = _scaled_size(frame.width, frame.height, self.max_side)
        rgb = frame.to_ndarray(format="rgb24", width=self.size[0], height=self.size[1])
        self.sampled += 1
        if self.on_frame is None:
            self.frames.append(rgb)
        else:
            self.on_frame(rgb, t)


def _open(path: Path, want_audio: bool, want_video: bool, max_duration_s: float):
    """(container, audio stream or None, video stream or None), or a FeatureError that says why not."""
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise FeatureError(f"{path.name}: not a media file FFmpeg can read ({e.__class__.__name__}); "
                           f"upload {describe()}") from e
    astream = container.streams.audio[0] if (want_audio and container.streams.audio) else None
    vstream = container.streams.video[0] if (want_video and container.streams.video) else None
    if astream is None and vstream is None:
        container.close()
        kinds = {(True, False): "audio", (False, True): "video"}.get((want_audio, want_video), "audio or video")
        raise FeatureError(f"{path.name}: the file has no {kinds} stream; upload a file that contains {kinds}")
    seconds = container.duration / 1e6 if container.duration is not None else None
    if seconds is not None and seconds > max_duration_s:
        container.close()
        raise _too_long(path, seconds, max_duration_s)
    return container, astream, vstream


def decode(path: str | Path, *, want_audio: bool = True, want_video: bool = True, video_fps: float = 5.0,
           max_side: int = 640, max_duration_s: float = 120.0, max_bytes: int = 200 * 2**20,
           on_frame: Callable[[np.ndarray, float], None] | None = None,
           on_audio: Callable[[np.ndarray], None] | None = None) -> Decoded:
    """on_frame(rgb, t): each sampled frame is handed to it as it is decoded and not kept
    (Decoded.frames is then an empty list), so memory stays bounded on long videos.

    on_audio(audio): where the file has both streams and both are wanted, the sound is decoded
    first, in a pass of its own, and handed to on_audio before the frames are decoded, so that
    work on the sound (the speech pass) overlaps the frame decoding. The result is the same."""
    import av

    path = Path(path)
    _check_file(path, max_bytes)
    container, astream, vstream = _open(path, want_audio, want_video, max_duration_s)
    info = {"container": container.format.name}
    sink = sampler = None
    if astream is not None:
        info.update(sample_rate_in=astream.sample_rate, channels_in=astream.channels)
        sink = _AudioSink(av)
    if vstream is not None:
        info.update(width_in=vstream.width, height_in=vstream.height)
        sampler = _FrameSampler(video_fps, max_side, on_frame)
    sound_first = on_audio is not None and sink is not None and sampler is not None
    with container:
        end_t = _demux(path, container, astream, None if sound_first else vstream, sink, sampler, max_duration_s, info)
    audio = sink.finish() if sink is not None else None
    if sound_first:
        on_audio(audio)
        container, _, vstream = _open(path, False, True, max_duration_s)
        with container:
            end_t = max(end_t, _demux(path, container, None, vstream, sink, sampler, max_duration_s, info))
    duration = max(end_t, len(audio) / SAMPLE_RATE if audio is not None else 0.0)
    if duration > max_duration_s:
        raise _too_long(path, duration, max_duration_s)
    if (audio is None or not len(audio)) and (sampler is None or not sampler.sampled):
        raise FeatureError(f"{path.name}: nothing could be decoded (the file is damaged or truncated); "
                           "upload the complete file")
    return Decoded(audio=audio, frames=sampler.frames if sampler is not None else None, duration_s=duration, info=info)


def _demux(path: Path, container, astream, vstream, sink, sampler, max_duration_s: float, info: dict) -> float:
    """Decode the given streams of an open container into sink and sampler; the end time, in s.
    Damage goes into info (damaged_packets adds up over passes)."""
    import av

    if vstream is not None:
        vstream.thread_type = "AUTO"
    end_t, bad_packets = 0.0, 0
    try:
        for packet in container.demux([s for s in (astream, vstream) if s is not None]):
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                # A damaged packet: skip it (the decoder resyncs at the next good one),
                # but give up on a file that is mostly damage.
                bad_packets += 1
                if bad_packets > MAX_BAD_PACKETS:
                    raise
                continue
            for frame in decoded:
                t = float(frame.time) if frame.time is not None else end_t
                if t > max_duration_s:
                    raise _too_long(path, t, max_duration_s)
                if packet.stream is astream:
                    end_t = max(end_t, t + frame.samples / frame.sample_rate)
                    sink.add(frame)
                else:
                    end_t = max(end_t, t)
                    sampler.add(frame, t)
    except av.error.FFmpegError as e:
        # A truncated or damaged file: keep what decoded, say so in quality.
        info["decode_warning"] = f"decoding stopped early: {e.__class__.__name__}"
        log.warning("%s: %s", path.name, info["decode_warning"])
    if bad_packets:
        info["damaged_packets"] = info.get("damaged_packets", 0) + bad_packets
    return end_t
