"""The sentiment timeline: segmentation, one decode pass with bounded memory, per-segment scores."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from model.features import FeatureError
from model.features.segment import SegmentConfig, quiet_intervals, segment
from model.features.speech import Segment, Transcript, Word
from tests.conftest import REPO, SHIPPED
from model.features.bench.media import make_long_clip, spoken_sentences

# Opposite polarity in turn; 14 sentences with 3.7 s pauses make about 90 s.
SENTENCES = [
    ("I absolutely loved this film, it was wonderful and moving.", 1),
    ("The service was terrible and the food was awful.", -1),
    ("What a great and happy day this is.", 1),
    ("I hated every minute of that boring meeting.", -1),
    ("My friends are brilliant and I am so grateful for them.", 1),
    ("This phone is a useless piece of junk and it broke again.", -1),
    ("The concert last night was fantastic, I enjoyed it so much.", 1),
    ("The hotel room was dirty and the staff were rude.", -1),
    ("She did an excellent job and everyone was delighted.", 1),
    ("That was the worst and most disappointing book I have read.", -1),
    ("We had a lovely time at the beautiful beach.", 1),
    ("The traffic was horrible and I felt miserable all day.", -1),
    ("This is a really good and pleasant little restaurant.", 1),
    ("I am angry and upset about this awful mistake.", -1),
]


def words(*items) -> list[Word]:
    return [Word(w, a, b, 0.9) for w, a, b in items]


# ---------------------------------------------------------------- segmentation rules


def test_short_pieces_merge_and_long_ones_split_at_words():
    a = Segment(0.0, 0.6, "Yes.", -0.1, 0.0, words(("Yes.", 0.0, 0.6)))
    long_words = [(f"w{i}", 1.0 + i, 1.8 + i) for i in range(20)]
    b = Segment(1.0, 20.8, "...", -0.1, 0.0, words(*long_words))
    segs = segment(21.0, Transcript("", [a, b], "en", 0.99), config=SegmentConfig(min_s=1.0, max_s=8.0))
    assert segs[0].start == 0.0 and segs[0].words[0].word == "Yes." and segs[0].words[1].word == "w0"  # merged
    assert all(s.duration <= 8.0 + 1e-9 for s in segs) and len(segs) == 3
    assert [w.word for s in segs for w in s.words] == ["Yes."] + [w for w, _, _ in long_words]  # every word once, in order
    assert all(s.source == "asr" for s in segs)


def test_a_sentence_end_before_a_pause_in_the_signal_ends_a_segment():
    # Whisper stretched "is." over the pause; the signal shows it.
    seg = Segment(0.0, 6.0, "", -0.1, 0.0, words(("Good", 0.0, 0.5), ("day", 0.5, 1.2), ("this", 1.2, 1.6), ("is.", 1.6, 2.5),
                                                  ("I", 3.0, 3.4), ("hated", 3.4, 4.5), ("it.", 4.5, 6.0)))
    quiet = [(2.0, 3.2)]
    segs = segment(6.0, Transcript("", [seg], "en", 0.99), quiet=quiet)
    assert [s.text for s in segs] == ["Good day this is.", "I hated it."]
    assert segs[0].end == 2.0 and segs[1].start == 3.2  # boundaries moved to the pause's edges


def test_fallbacks_vad_then_windows():
    vad = segment(30.0, None, [(1.0, 4.0), (10.0, 12.5)])
    assert [(s.start, s.end, s.source) for s in vad] == [(1.0, 4.0, "vad"), (10.0, 12.5, "vad")]
    windows = segment(20.0, None, None, SegmentConfig(window_s=8.0))
    assert [s.source for s in windows] == ["window"] * 3 and windows[-1].end == 20.0
    assert sum(s.duration for s in windows) == pytest.approx(20.0)


def test_quiet_intervals():
    x = np.concatenate([np.zeros(16000), 0.5 * np.ones(8000), np.zeros(3200), 0.5 * np.ones(8000)]).astype(np.float32)
    assert quiet_intervals(x) == [(0.0, 1.0)]  # the 0.2 s gap is shorter than a pause


# ---------------------------------------------------------------- the whole path


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    signal, truth = spoken_sentences([s for s, _ in SENTENCES], pause_s=3.7)
    path = tmp_path_factory.mktemp("timeline") / "talk.wav"
    sf.write(path, signal, 16000)
    return path, truth, len(signal) / 16000


@pytest.mark.parametrize("speech_running", [True, False])
def test_face_batches_keep_frame_order_and_run_two_at_a_time_only_once_speech_is_done(speech_running):
    """Batches finish out of order (later ones faster); rows still come back in frame order.
    While the speech pass runs, one batch at a time; after it, at most two at once."""
    import threading
    import time

    from model.features.long_clip import FRAME_BATCH, _FaceStream

    lock, busy, most = threading.Lock(), [0], [0]

    class Frontend:
        def visual_rows(self, frames):
            with lock:
                busy[0] += 1
                most[0] = max(most[0], busy[0])
            time.sleep(0.05 if frames[0][0, 0, 0] < 50 else 0.001)  # the first two batches are the slow ones
            with lock:
                busy[0] -= 1
            return np.array([[f[0, 0, 0]] for f in frames], np.float32), 1, {}

    stream = _FaceStream(Frontend(), lambda t: None, lambda: speech_running)
    n = 5 * FRAME_BATCH + 7
    for i in range(n):
        stream(np.full((2, 2, 3), i % 256, np.uint8), i / 5)
    rows, times = stream.result()
    assert rows[:, 0].tolist() == [float(i % 256) for i in range(n)]
    assert times.tolist() == [i / 5 for i in range(n)]
    assert most[0] == (1 if speech_running else 2)


def test_segments_follow_the_sentences_and_scores_their_polarity(shipped, spoken):
    path, truth, seconds = spoken
    assert 85 <= seconds <= 100
    result = shipped().timeline(audio=path)
    segs = result["segments"]
    assert len(segs) == len(SENTENCES)
    for seg, (start, end), (_, polarity) in zip(segs, truth, SENTENCES):
        assert abs(seg["start"] - start) <= 0.5 and abs(seg["end"] - end) <= 0.5, (seg["start"], seg["end"], start, end)
        assert seg["source"] == "asr" and seg["words"] and seg["text"]
        assert np.sign(seg["score"]) == polarity, (seg["text"], seg["score"])
    weights = np.array([s["end"] - s["start"] for s in segs])
    assert result["score"] == pytest.approx(float((weights * [s["score"] for s in segs]).sum() / weights.sum()), abs=1e-5)
    assert segs[result["strongest_positive"]]["score"] == max(s["score"] for s in segs)
    assert segs[result["strongest_negative"]]["score"] == min(s["score"] for s in segs)
    json.dumps(result)


def test_no_speech_falls_back_to_windows(shipped, tmp_path):
    clip = make_long_clip(tmp_path / "quiet.mp4", np.zeros(16000 * 20, np.float32), fps=5)
    result = shipped().timeline(video=clip)
    assert [s["source"] for s in result["segments"]] == ["window"] * 3
    assert all(s["diagnostics"]["visual"]["present"] and not s["diagnostics"]["audio"]["present"] for s in result["segments"])


def test_bad_input_gets_the_same_clear_errors(shipped, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(FeatureError, match="empty"):
        shipped().timeline(video=empty)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(FeatureError, match="not a media file"):
        shipped().timeline(video=junk)
    with pytest.raises(FeatureError, match="nothing to analyse"):
        shipped().timeline()
    from app.config import AppConfig
    from app.predictor import Predictor

    short = Predictor(SHIPPED, AppConfig(threads=1, max_timeline_s=10))
    clip = make_long_clip(tmp_path / "long.mp4", np.zeros(16000 * 15, np.float32), fps=2)
    with pytest.raises(FeatureError, match="over the 10 s limit"):
        short.timeline(video=clip)


MEMORY_PROBE = """
import resource, sys
from model.features import FrontEnd
from model.features.long_clip import extract_long
fe = FrontEnd()
extract_long(fe, video=sys.argv[1])  # warm: models loaded, first allocations made
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = extract_long(fe, video=sys.argv[2])
print(len(out.segments), out.quality["frames"], base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow  # a long video
def test_memory_stays_bounded_on_a_long_video(tmp_path):
    """Two minutes of 640x480 at 5 fps sampled are 600 frames, 550 MB as RGB arrays; the
    streaming path must stay far below that above its warm baseline."""
    signal, _ = spoken_sentences([s for s, _ in SENTENCES[:4]], pause_s=2.0)
    long = np.resize(signal, 16000 * 120)
    warm = make_long_clip(tmp_path / "warm.mp4", signal[: 16000 * 10], fps=10)
    clip = make_long_clip(tmp_path / "long.mp4", long, fps=10)
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(warm), str(clip)], cwd=REPO, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    segments, frames, base_kb, peak_kb = map(int, out.stdout.split())
    assert frames == 600 and segments >= 10
    assert (peak_kb - base_kb) / 1024 < 250, f"peak RSS grew by {(peak_kb - base_kb) / 1024:.0f} MB"
