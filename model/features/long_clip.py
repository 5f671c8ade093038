"""A whole video (or recording) in one pass, cut into segments for a sentiment timeline.

The file is decoded once. Frames are featurised as they are decoded, a few at a time,
and never held all at once, so memory stays bounded on a 10-minute 720p video; the 16 kHz
audio (38 MB for 10 minutes) is kept whole for one Whisper pass, which gives the words
with their timestamps and the voice frames with theirs. Segments (model/features/segment.py)
then slice the three streams, and each slice is one ClipFeatures, exactly what the model
scores for a short clip.
"""
from __future__ import annotations

import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from model.features import transcript_gate, voice
from model.features.config import ClipFeatures
from model.features.decode import decode
from model.features.errors import FeatureError
from model.features.segment import SegmentConfig, TimelineSegment, quiet_intervals, segment
from model.features.speech import Transcript
from model.features.visual import FACE_PRESENT, VISUAL_DIM

FRAME_BATCH = 25  # frames featurised together (5 s at 5 fps): bounded memory, full batches for the CNN
FACE_THREADS = 2
_FACE_POOL = ThreadPoolExecutor(max_workers=FACE_THREADS, thread_name_prefix="faces")


@dataclass
class LongClip:
    duration_s: float
    segments: list[TimelineSegment]
    clips: list[ClipFeatures]            # one per segment, in order
    transcript: Transcript | None
    quality: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)


class _FaceStream:
    """Visual rows of the frames handed to it, featurised FRAME_BATCH at a time.

    Each batch is a fresh track (a full face search first), so batches are independent. While
    the speech pass runs (past 30 s of speech, two windows at a time: both cores are busy),
    decoding waits for each batch's faces; once it is done, a batch's faces are found while the
    next batch is decoded and featurised, on a pool of two threads, so the faces get both
    cores. At most two batches are in flight, so memory stays bounded."""

    def __init__(self, frontend, on_batch: Callable[[float], None], speech_running: Callable[[], bool]):
        self.frontend, self.on_batch, self.speech_running = frontend, on_batch, speech_running
        self.rows, self.times, self.buffer, self.pending, self.faces_max = [], [], [], deque(), 0

    def __call__(self, rgb: np.ndarray, t: float) -> None:
        self.buffer.append((rgb, t))
        if len(self.buffer) >= FRAME_BATCH:
            self.flush()
            self.on_batch(t)

    def flush(self) -> None:
        if self.buffer:
            self.pending.append(_FACE_POOL.submit(self.frontend.visual_rows, [f for f, _ in self.buffer]))
            self.times.extend(t for _, t in self.buffer)
            self.buffer = []
        while len(self.pending) > (0 if self.speech_running() else FACE_THREADS - 1):
            self._collect()

    def _collect(self) -> None:
        rows, most, _ = self.pending.popleft().result()
        self.rows.append(rows)
        self.faces_max = max(self.faces_max, most)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(visual rows, their times in seconds)."""
        self.flush()
        while self.pending:
            self._collect()
        visual = np.concatenate(self.rows) if self.rows else np.zeros((0, VISUAL_DIM), np.float32)
        return visual, np.array(self.times)


def _decode_streams(frontend, video, audio, limits: dict, faces: _FaceStream, on_sound) -> tuple[np.ndarray | None, float, dict]:
    """Decode once, featurising frames on the way; (16 kHz audio or None, duration, container info).
    An audio file given beside a video replaces the video's sound track. on_sound(audio) gets the
    sound as soon as it is decoded: before the frames, where the video file has both."""
    signal, durations, info, started = None, [], {}, []

    def sound(audio_16k):
        started.append(True)
        on_sound(audio_16k)

    if audio is not None:
        da = decode(audio, want_audio=True, want_video=False, **limits)
        signal, durations = da.audio, [da.duration_s]
        sound(signal)
    if video is not None:
        dv = decode(video, want_audio=audio is None, want_video=True, on_frame=faces,
                    on_audio=sound if audio is None else None, **limits)
        faces.flush()
        info.update(dv.info)
        durations.append(dv.duration_s)
        if audio is None:
            signal = dv.audio
            if not started:
                sound(signal)
    return signal, max(durations), info


def extract_long(frontend, *, video=None, audio=None, max_duration_s: float = 600.0, max_bytes: int | None = None,
                 config: SegmentConfig | None = None, progress: Callable[[float, str], None] | None = None) -> LongClip:
    """progress(share done in [0, 1], stage) is called as the work advances."""
    c = frontend.config
    if video is None and audio is None:
        raise FeatureError("nothing to analyse: give a video or an audio file for the timeline")
    report = progress or (lambda share, stage: None)
    limits = dict(video_fps=c.video_fps, max_side=c.max_side, max_duration_s=max_duration_s,
                  max_bytes=max_bytes or c.max_bytes)

    t0 = time.perf_counter()
    report(0.0, "decoding")
    # The speech pass runs on the other core while the frames are decoded and their faces found.
    speech = []
    faces = _FaceStream(frontend, lambda t: report(0.5 * min(1.0, t / max_duration_s), "faces"),
                        lambda: bool(speech) and speech[0] is not None and not speech[0].done())
    signal, duration, quality = _decode_streams(
        frontend, video, audio, limits, faces,
        lambda sound: speech.append(frontend.start_speech(sound, c.asr) if sound is not None and len(sound) else None))
    visual, frame_times = faces.result()
    timings = {"decode_and_faces": time.perf_counter() - t0}
    quality.update(duration_s=round(duration, 3), frames=len(visual), faces_max=faces.faces_max,
                   face_share=round(float((visual[:, FACE_PRESENT] == 1).mean()), 4) if len(visual) else 0.0)

    t0 = time.perf_counter()
    report(0.5, "speech")
    analysis = speech[0].result()[2] if speech and speech[0] is not None else None
    transcript = analysis.transcript if analysis is not None else None
    # The wait for the speech pass after the faces were done; the pass itself is in "speech_pass".
    timings["speech"] = time.perf_counter() - t0
    if analysis is not None:
        timings["speech_pass"] = analysis.seconds
    english = True
    if transcript is not None:
        quality.update(asr_model=transcript.model, asr_language=transcript.language)
        unscored = transcript_gate.check(transcript, frontend.config.gate)[1]
        if unscored:
            english, quality["text_absent_reason"] = False, unscored

    t0 = time.perf_counter()
    report(0.9, "segments")
    chunks = analysis.speech_chunks_s if analysis is not None and not analysis.reason else None
    quiet = quiet_intervals(signal) if signal is not None else []
    segments = segment(duration, transcript if english else None, chunks, config, quiet)
    clips = [_slice(frontend, s, analysis, visual, frame_times, english, quality) for s in segments]
    timings["segments"] = time.perf_counter() - t0
    report(1.0, "done")
    return LongClip(duration, segments, clips, transcript, quality, timings)


def _slice(frontend, seg: TimelineSegment, analysis, visual: np.ndarray, frame_times: np.ndarray, english: bool,
           quality: dict) -> ClipFeatures:
    q = {"start_s": round(seg.start, 3), "end_s": round(seg.end, 3), "segment_source": seg.source}
    if analysis is not None and analysis.frame_times is not None and len(analysis.frames):
        keep = (analysis.frame_times >= seg.start) & (analysis.frame_times < seg.end)
        audio = voice.pool(analysis.frames[keep], frontend.config.audio_rate_hz)
        q["voiced_share"] = round(min(1.0, keep.sum() / voice.ENCODER_RATE_HZ / max(seg.duration, 1e-9)), 4)
    else:
        audio = np.zeros((0, voice.AUDIO_DIM), np.float32)
    if not len(audio):
        q["audio_absent_reason"] = "no speech in this segment" if analysis is not None else "no audio track"
    v = visual[(frame_times >= seg.start) & (frame_times < seg.end)] if len(visual) else visual
    if not len(v) or not (v[:, FACE_PRESENT] == 1).any():
        q["visual_absent_reason"] = "no face in this segment" if len(visual) else "no video"
        v = v[:0]
    else:
        q["face_share"] = round(float((v[:, FACE_PRESENT] == 1).mean()), 4)
    text = seg.text if english else ""
    if not text:
        q["text_absent_reason"] = ("no words in this segment" if english
                                   else quality.get("text_absent_reason", "speech in another language"))
    return ClipFeatures(text=text, text_source="automatic" if text else "absent", audio=audio, visual=v, quality=q)
