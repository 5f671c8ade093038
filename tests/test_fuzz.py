"""Generated bad inputs (hypothesis): every case ends, within a time bound, in a prediction or in
one clear FeatureError, never in any other exception.

- real containers (mp4, webm, wav, flac, ogg, m4a) with bytes flipped, truncated or spliced;
- streams that decode but are odd: sizes, portrait frames, variable frame rate, no audio or no
  video, audio alone in a video container, silence, clipping, DC offset;
- Unicode and control characters as the text;
- batch zips: path traversal, symlinks, nested zips, bombs by ratio and by count, duplicate and
  non-UTF-8 names, damaged members;
- the timeline on long silence, noise and music.

The examples hypothesis shrank failures to are kept as @example regressions. The number of
examples per test is the "ci" profile's; `HYPOTHESIS_PROFILE=campaign` runs many more.
"""
from __future__ import annotations

import io
import math
import os
import stat
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.batch import run_batch
from app.config import AppConfig
from app.predictor import Predictor
from model.features import FeatureError
from model.features.bench.media import make_audio, make_clip, write_media, face_frame

pytestmark = pytest.mark.slow  # hundreds of front-end runs

settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("campaign", max_examples=400, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

BOUND_S = 30.0  # seconds one case may take on a busy 2-core machine
AUDIO_EXTS = (".wav", ".flac", ".ogg", ".m4a")
VIDEO_EXTS = (".mp4", ".webm")


@pytest.fixture(scope="module")
def predictor(clip_model_dir):
    return Predictor(clip_model_dir, AppConfig(threads=1, asr=False, max_duration_s=20, max_upload_mb=5,
                                               max_timeline_s=150))


class Seeds(dict):
    """Real files by extension; a short repr, so a failing example prints readably."""

    def __repr__(self) -> str:
        return f"<seed files {sorted(self)}>"


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("fuzz_seeds")
    out = Seeds({ext: make_clip(root / f"clip{ext}", seconds=1.2, size=(160, 120), fps=10).read_bytes() for ext in VIDEO_EXTS})
    out.update({ext: make_audio(root / f"speech{ext}", seconds=1.5).read_bytes() for ext in AUDIO_EXTS})
    return out


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz_cases")


def outcome(call) -> str:
    """"prediction" or "error", after checking that the call ended in one of them, in time."""
    started = time.perf_counter()
    try:
        result = call()
    except FeatureError as e:
        message = str(e)
        assert message.strip() and len(message) < 600, message
        kind = "error"
    else:
        assert math.isfinite(result["score"]) and -3 <= result["score"] <= 3
        kind = "prediction"
    assert time.perf_counter() - started < BOUND_S
    return kind


def _kind(ext: str) -> str:
    return "video" if ext in VIDEO_EXTS else "audio"


# ---------------------------------------------------------------- damaged containers

mutation = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), min_size=1, max_size=64)),
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("splice"), st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.sampled_from(VIDEO_EXTS + AUDIO_EXTS))),
)


def mutate(raw: bytes, how, seeds: dict[str, bytes]) -> bytes:
    op, arg = how
    data = bytearray(raw)
    if op == "flip":
        for where, value in arg:
            i = min(len(data) - 1, int(where * len(data)))
            data[i] ^= value
    elif op == "truncate":
        data = data[: int(arg * len(data))]
    else:  # a piece of another file pasted over this one's bytes
        at, start, length, other = arg
        donor = seeds[other]
        a = int(start * len(donor))
        piece = donor[a : a + max(1, int(length * len(donor) / 4))]
        i = int(at * len(data))
        data[i : i + len(piece)] = piece
    return bytes(data)


@settings(max_examples=settings.default.max_examples * 2)
@given(ext=st.sampled_from(VIDEO_EXTS + AUDIO_EXTS), how=mutation)
@example(ext=".mp4", how=("truncate", 0.0))
@example(ext=".wav", how=("truncate", 0.02))
@example(ext=".ogg", how=("flip", [(0.0, 79)]))
def test_damaged_containers_end_in_a_prediction_or_one_clear_error(predictor, seeds, scratch, ext, how):
    path = scratch / f"damaged{ext}"
    path.write_bytes(mutate(seeds[ext], how, seeds))
    outcome(lambda: predictor.predict(**{_kind(ext): path}))


# ---------------------------------------------------------------- odd but valid streams

signal_shape = st.sampled_from(["speech", "silence", "clipped", "dc", "noise"])


def _audio(shape: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    from model.features.bench.media import speech

    n = int(seconds * 16000)
    if shape == "silence":
        return np.zeros(n, np.float32)
    if shape == "noise":
        return (0.3 * rng.standard_normal(n)).astype(np.float32)
    voice = np.resize(speech(), n)
    if shape == "clipped":
        return np.clip(voice * 20, -1, 1).astype(np.float32)
    return (voice * 0.5 + 0.5).astype(np.float32)  # "dc": a constant offset


@given(
    size=st.tuples(st.integers(1, 400).map(lambda k: 2 * k), st.integers(1, 400).map(lambda k: 2 * k)),
    portrait=st.booleans(), frames=st.integers(1, 12), fps=st.sampled_from([1.0, 2.5, 10.0, 29.97, 60.0]),
    audio=st.one_of(st.none(), signal_shape), container=st.sampled_from([".mp4", ".mkv", ".webm"]),
    vfr_seed=st.one_of(st.none(), st.integers(0, 2**16)),
)
def test_odd_streams_end_in_a_prediction_or_one_clear_error(predictor, scratch, size, portrait, frames, fps, audio,
                                                            container, vfr_seed):
    still = face_frame(size)
    if portrait:
        still = np.ascontiguousarray(np.rot90(still))
    video = [np.roll(still, i, axis=1) for i in range(frames)]
    if vfr_seed is not None:  # variable frame rate: some frames repeated, some dropped
        rng = np.random.default_rng(vfr_seed)
        video = [video[min(len(video) - 1, int(i))] for i in np.sort(rng.uniform(0, len(video), len(video)))]
    sound = _audio(audio, frames / fps, np.random.default_rng(0)) if audio else None
    path = write_media(scratch / f"odd{container}", frames=video, fps=fps, audio=sound)
    outcome(lambda: predictor.predict(video=path))


@given(shape=signal_shape, seconds=st.floats(0.01, 4.0), in_video_container=st.booleans(), rate=st.sampled_from([8000, 16000, 44100]))
def test_audio_alone_in_any_container(predictor, scratch, shape, seconds, in_video_container, rate):
    sound = _audio(shape, seconds, np.random.default_rng(1))
    if rate != 16000:
        sound = np.interp(np.linspace(0, len(sound), int(len(sound) * rate / 16000), endpoint=False),
                          np.arange(len(sound)), sound).astype(np.float32)
    if in_video_container:  # an mp4 with a sound track and no picture, given as the video
        path = write_media(scratch / "audio_only.mp4", audio=sound, sample_rate=rate)
        outcome(lambda: predictor.predict(video=path))
    else:
        path = scratch / "plain.wav"
        sf.write(path, sound, rate)
        outcome(lambda: predictor.predict(audio=path))


# ---------------------------------------------------------------- text

@settings(max_examples=settings.default.max_examples * 5)
@given(text=st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=3000))
@example(text="\x00")
@example(text="\u202e\u200b\ufeff")
@example(text=" \n\t ")
def test_any_unicode_text_ends_in_a_prediction_or_one_clear_error(predictor, text):
    assert outcome(lambda: predictor.predict(text=text)) == ("prediction" if text.strip() else "error")


# ---------------------------------------------------------------- batch zips

member_name = st.one_of(
    st.sampled_from(["clip.wav", "../../escape.wav", "/abs/escape.wav", "a/../../escape.wav", "..\\..\\escape.wav",
                     "dir/clip.mp4", "café.wav", "ünïcödé/ß.flac", ".hidden.wav", "__MACOSX/._clip.wav", "clip.WAV",
                     "x" * 300 + ".wav", "inner.zip", "notes.txt", "clip"]),
    st.text(min_size=1, max_size=40).map(lambda s: s + ".wav"),
)
member_kind = st.sampled_from(["media", "damaged", "symlink", "nested_zip", "empty", "dir"])


class LegacyNameInfo(zipfile.ZipInfo):
    """A member whose name is stored as old Windows tools store it: code page 437 bytes, no UTF-8
    flag, so the raw name is not valid UTF-8."""

    def _encodeFilenameFlags(self):
        return self.filename.encode("cp437", errors="replace"), self.flag_bits & ~0x800


def build_zip(members: list[tuple[str, str]], media: bytes, non_utf8: bool) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, kind in members:
            info = (LegacyNameInfo if non_utf8 else zipfile.ZipInfo)(name.rstrip("/") + "/" if kind == "dir" else name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if kind == "symlink":
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                z.writestr(info, "/etc/passwd")
            elif kind == "nested_zip":
                inner = io.BytesIO()
                with zipfile.ZipFile(inner, "w") as iz:
                    iz.writestr("inside.wav", media)
                z.writestr(info, inner.getvalue())
            elif kind == "dir":
                z.writestr(info, b"")
            else:
                z.writestr(info, {"media": media, "damaged": media[: len(media) // 3], "empty": b""}[kind])
    return buf.getvalue()


def check_batch(predictor, scratch: Path, files: list[Path]) -> None:
    out = scratch / "batch_out"
    before = {p for p in scratch.parent.rglob("escape*")}
    try:
        _, rows = run_batch(predictor, [str(f) for f in files], None, out, predictor.config)
    except FeatureError as e:
        assert str(e).strip()
    else:
        assert rows and not any(r["error"].startswith("internal error") for r in rows), rows
    assert {p for p in scratch.parent.rglob("escape*")} == before  # nothing written outside the batch's folder


@given(members=st.lists(st.tuples(member_name, member_kind), min_size=1, max_size=6), non_utf8=st.booleans(),
       damage=st.one_of(st.none(), st.tuples(st.floats(0, 1), st.integers(1, 255))))
@example(members=[("clip.wav", "media"), ("clip.wav", "media")], non_utf8=False, damage=None)
@example(members=[("../../escape.wav", "media")], non_utf8=False, damage=None)
@example(members=[("\x00.wav", "media")], non_utf8=False, damage=None)  # an empty name once crashed the batch
@example(members=[("x" * 300 + ".wav", "media")], non_utf8=False, damage=None)  # once: "File name too long"
@example(members=[("clip.wav", "media")], non_utf8=False, damage=(0.5, 1))  # once: a zlib error, not a row
@example(members=[("clip.wav", "empty")], non_utf8=False, damage=(0.96875, 1))  # once: OSError from a bad offset
def test_batch_zips_end_in_rows_or_one_clear_error(predictor, seeds, scratch, members, non_utf8, damage):
    data = build_zip(members, seeds[".wav"], non_utf8)
    if damage is not None:  # a damaged archive: a byte changed anywhere, headers included
        data = bytearray(data)
        data[min(len(data) - 1, int(damage[0] * len(data)))] ^= damage[1]
        data = bytes(data)
    path = scratch / "batch.zip"
    path.write_bytes(data)
    check_batch(predictor, scratch, [path])


@pytest.mark.parametrize("bomb", ["ratio", "count", "size_lies"])
def test_zip_bombs_are_refused_before_anything_is_written(predictor, seeds, scratch, bomb):
    path = scratch / f"bomb_{bomb}.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        if bomb == "ratio":
            z.writestr("zeros.wav", b"\x00" * (4 * 2**20))  # about 1000:1
        elif bomb == "count":
            for i in range(5000):
                z.writestr(f"clip{i}.wav", b"")
        else:
            z.writestr("clip.wav", seeds[".wav"])
    if bomb == "size_lies":  # the header claims a small member; the data is larger
        config = AppConfig(threads=1, asr=False, max_upload_mb=len(seeds[".wav"]) / 2 / 2**20)
        with pytest.raises(FeatureError, match="clip|limit|larger"):
            run_batch(predictor, [str(path)], None, scratch / "out", config)
        return
    started = time.perf_counter()
    with pytest.raises(FeatureError, match="zip bomb|limit"):
        run_batch(predictor, [str(path)], None, scratch / "out", predictor.config)
    assert time.perf_counter() - started < 5


# ---------------------------------------------------------------- the timeline

@pytest.mark.parametrize("sound", ["silence", "noise", "music"])
def test_the_timeline_on_long_silence_noise_and_music(predictor, scratch, sound):
    seconds, rng = 75.0, np.random.default_rng(2)
    t = np.arange(int(seconds * 16000)) / 16000
    signal = {
        "silence": np.zeros_like(t),
        "noise": 0.3 * rng.standard_normal(len(t)),
        # a I-IV-V-I progression of triads with a beat: tonal, loud and nothing like speech
        "music": sum(0.1 * np.sin(2 * np.pi * f * (1 + 0.5 * ((t // 2) % 4 == k)) * t) for k, f in enumerate((220, 277, 330)))
                 * (0.6 + 0.4 * (np.sin(2 * np.pi * 2 * t) > 0)),
    }[sound].astype(np.float32)
    path = scratch / f"{sound}.wav"
    sf.write(path, signal, 16000)
    started = time.perf_counter()
    try:
        result = predictor.timeline(audio=path)
    except FeatureError as e:
        assert str(e).strip()
    else:
        assert result["segments"] and all(s["score"] is None or -3 <= s["score"] <= 3 for s in result["segments"])
        assert abs(sum(s["end"] - s["start"] for s in result["segments"]) - seconds) < 1.0
    assert time.perf_counter() - started < 4 * BOUND_S
