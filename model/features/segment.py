"""Split a long recording into utterance-like segments for a sentiment timeline.

Sources, in order of preference:
1. the speech recogniser's segments, merged while shorter than `min_s` and split at
   word boundaries when longer than `max_s`;
2. failing words, the voice-activity chunks (pauses in the speech), merged and split
   the same way;
3. failing speech, fixed windows of `window_s`.
Recogniser segments are first cut where a sentence ends before a pause, or at any long
pause between words: Whisper often runs two sentences of opposite sentiment together.
Word timestamps are only good to a few tenths of a second, so `refine` then moves each
boundary to the nearest onset or offset of sound in the signal (20 ms energy frames).
Each segment carries its start and end (seconds from the start of the recording), its
words and its source ("asr", "vad" or "window").
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SegmentConfig:
    min_s: float = 1.0     # shorter pieces are merged with their neighbour
    max_s: float = 15.0    # longer pieces are split (at word boundaries when there are words)
    window_s: float = 8.0  # the fixed windows when there is no speech at all
    sentence_pause_s: float = 0.3  # a sentence end followed by this much silence ends a segment
    long_pause_s: float = 1.0      # so does any pause this long between words
    refine_s: float = 0.6          # boundaries move to the signal's own onsets within this distance


@dataclass
class TimelineSegment:
    start: float
    end: float
    source: str                      # "asr" | "vad" | "window"
    words: list = field(default_factory=list)  # model.features.speech.Word, in order

    @property
    def text(self) -> str:
        return " ".join(w.word for w in self.words)

    @property
    def duration(self) -> float:
        return self.end - self.start


def _split_at_pauses(piece: TimelineSegment, c: SegmentConfig, quiet: list[tuple[float, float]]) -> list[TimelineSegment]:
    """Cut between two words where a sentence ends and the signal pauses, or the words are far apart.

    Whisper stretches word timestamps over short pauses, so the pause is looked for in the
    signal (`quiet` intervals) between the sentence's last word and the next word's end."""
    out, current = [], []
    for w, nxt in zip(piece.words, piece.words[1:] + [None]):
        current.append(w)
        if nxt is None:
            break
        sentence_end = w.word.endswith((".", "!", "?"))
        paused = any(a < nxt.end and b > w.start and b - a >= c.sentence_pause_s for a, b in quiet)
        if nxt.start - w.end >= c.long_pause_s or (sentence_end and (paused or nxt.start - w.end >= c.sentence_pause_s)):
            out.append(TimelineSegment(current[0].start, w.end, piece.source, current))
            current = []
    if current:
        out.append(TimelineSegment(current[0].start, piece.end, piece.source, current))
    out[0].start = piece.start
    return out


def quiet_intervals(signal, sample_rate: int = 16000, min_s: float = 0.3) -> list[tuple[float, float]]:
    """(start, end) seconds of the stretches of at least min_s whose 20 ms energy is under 5 %
    of the recording's loud level (its 95th percentile)."""
    import numpy as np

    hop = sample_rate // 50
    n = len(signal) // hop
    if n < 3:
        return []
    rms = np.sqrt((np.asarray(signal[: n * hop], np.float64).reshape(n, hop) ** 2).mean(1))
    quiet = np.concatenate([[False], rms <= max(1e-4, 0.05 * np.percentile(rms, 95)), [False]])
    edges = np.flatnonzero(np.diff(quiet.astype(int)))
    spans = [(a * hop / sample_rate, b * hop / sample_rate) for a, b in zip(edges[::2], edges[1::2])]
    return [(a, b) for a, b in spans if b - a >= min_s]


def refine(segments: list[TimelineSegment], quiet: list[tuple[float, float]],
           config: SegmentConfig | None = None) -> list[TimelineSegment]:
    """Move each start to the end of the nearest pause and each end to the start of the nearest
    pause, within config.refine_s. A start inside a pause, or just before a pause of at least
    long_pause_s that lies within the segment (Whisper sometimes starts a sentence's first
    word seconds early, in the silence), moves to that pause's end, however far; ends
    likewise. A boundary with no pause nearby stays."""
    c = config or SegmentConfig()

    def nearest(t: float, candidates: list[float]) -> float:
        best = min(candidates, key=lambda x: abs(x - t), default=t)
        return best if abs(best - t) <= c.refine_s else t

    def inside_or_leading(seg) -> float | None:
        # A start inside a pause, or just before a long one within the segment: the words begin after it.
        return next((b for a, b in quiet if b < seg.end and (a <= seg.start < b or
                     (abs(a - seg.start) <= c.refine_s and b - a >= c.long_pause_s))), None)

    def inside_or_trailing(seg) -> float | None:
        return next((a for a, b in quiet if a > seg.start and (a < seg.end <= b or
                     (abs(b - seg.end) <= c.refine_s and b - a >= c.long_pause_s))), None)

    out = []
    for seg in segments:
        start = inside_or_leading(seg)
        start = start if start is not None else nearest(seg.start, [b for _, b in quiet] + [0.0])
        end = inside_or_trailing(seg)
        end = end if end is not None else nearest(seg.end, [a for a, _ in quiet])
        out.append(TimelineSegment(start, end, seg.source, seg.words) if end > start else seg)
    return out


def _fold_silent(pieces: list[TimelineSegment], quiet: list[tuple[float, float]]) -> list[TimelineSegment]:
    """Pieces that are mostly silence (a word Whisper placed in a pause) give their words to the
    next piece (the previous one, for the last) instead of standing alone."""
    def silent(p: TimelineSegment) -> bool:
        covered = sum(max(0.0, min(b, p.end) - max(a, p.start)) for a, b in quiet)
        return p.duration <= 0 or covered / p.duration >= 0.8

    out: list[TimelineSegment] = []
    carried: list = []
    for p in pieces:
        if silent(p) and len(pieces) > 1:
            carried += p.words
            continue
        out.append(TimelineSegment(p.start, p.end, p.source, carried + p.words))
        carried = []
    if carried and out:
        out[-1].words += carried
    return out or pieces


def _merge_short(pieces: list[TimelineSegment], min_s: float, max_s: float) -> list[TimelineSegment]:
    """Merge each piece shorter than min_s into the following one (the last into the one before),
    unless the merge would exceed max_s."""
    out: list[TimelineSegment] = []
    for p in pieces:
        if out and out[-1].duration < min_s and p.end - out[-1].start <= max_s:
            out[-1] = TimelineSegment(out[-1].start, p.end, p.source, out[-1].words + p.words)
        else:
            out.append(p)
    if len(out) > 1 and out[-1].duration < min_s and out[-1].end - out[-2].start <= max_s:
        last = out.pop()
        out[-1] = TimelineSegment(out[-1].start, last.end, last.source, out[-1].words + last.words)
    return out


def _split_long(piece: TimelineSegment, max_s: float) -> list[TimelineSegment]:
    """Cut a piece longer than max_s into near-equal parts, at word boundaries when it has words."""
    if piece.duration <= max_s:
        return [piece]
    parts = int(-(-piece.duration // max_s))
    if not piece.words:
        step = piece.duration / parts
        return [TimelineSegment(piece.start + i * step, piece.start + (i + 1) * step, piece.source) for i in range(parts)]
    out, current = [], []
    target = piece.duration / parts
    start = piece.start
    for w in piece.words:
        if current and w.end - start > target and len(out) < parts - 1:
            out.append(TimelineSegment(start, current[-1].end, piece.source, current))
            start, current = w.start, []
        current.append(w)
    out.append(TimelineSegment(start, piece.end, piece.source, current))
    return out


def segment(duration_s: float, transcript=None, speech_chunks_s: list[tuple[float, float]] | None = None,
            config: SegmentConfig | None = None, quiet: list[tuple[float, float]] | None = None) -> list[TimelineSegment]:
    """Segments covering the recording's speech (or all of it, with no speech).

    transcript: model.features.speech.Transcript with word timestamps, or None;
    speech_chunks_s: (start, end) seconds of the VAD's speech, or None;
    quiet: the signal's pauses (`quiet_intervals`), to cut at and to refine boundaries with.
    """
    c = config or SegmentConfig()
    quiet = quiet or []
    if transcript is not None and transcript.segments:
        pieces = [part for s in transcript.segments if s.end > s.start and s.words
                  for part in _split_at_pauses(TimelineSegment(s.start, s.end, "asr", list(s.words)), c, quiet)]
    elif speech_chunks_s:
        pieces = [TimelineSegment(a, b, "vad") for a, b in speech_chunks_s if b > a]
    else:
        n = max(1, int(-(-duration_s // c.window_s)))
        step = duration_s / n
        return [TimelineSegment(i * step, duration_s if i == n - 1 else (i + 1) * step, "window") for i in range(n)]
    split = [part for p in refine(_fold_silent(pieces, quiet), quiet, c) for part in _split_long(p, c.max_s)]
    return _merge_short(split, c.min_s, c.max_s)
