"""Utterance context: the transcripts of the K segments before each target, in its video.

A segment's context is built from transcripts only (never labels), from segments of the
same video and the same split, that start before it. The model reads the target first
and the context after the tokenizer's separator, most recent segment first, so that
truncation to max_text_len drops the oldest context before any of the target, and the
first token (or the mean, with text_pooling="mean") belongs to the scored segment.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    video: str
    split: str
    position: tuple  # orders segments within a video: (start time, clip number), or the clip number
    text: str


def previous_texts(segments: list[Segment], k: int) -> list[list[str]]:
    """Per segment, the texts of up to k segments before it in its own video and split,
    most recent first."""
    if k <= 0:
        return [[] for _ in segments]
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, s in enumerate(segments):
        groups[(s.video, s.split)].append(i)
    out: list[list[str]] = [[] for _ in segments]
    for members in groups.values():
        ordered = sorted(members, key=lambda i: segments[i].position)
        for position, i in enumerate(ordered):
            before = ordered[max(0, position - k) : position]
            out[i] = [segments[j].text for j in reversed(before) if segments[j].text.strip()]
    return out


def join_context(texts: list[str], separator: str) -> str:
    """One context string: the previous segments, most recent first, between separators."""
    return f" {separator} ".join(t.strip() for t in texts if t.strip())
