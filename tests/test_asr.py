"""Speech recognition: Whisper from wheels, known answers, silence, timestamps, offline, threads."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata

import numpy as np
import pytest
import soundfile as sf

from model.features import whisper_models
from model.features.bench.asr import edit_distance, normalise, wer
from model.features.bench.long_speech import encoder_calls
from model.features.speech import DEFAULT_ASR_MODEL, AsrConfig, Transcriber, Word, chunk_joins, speech_windows, too_fast
from tests.conftest import DATA, REPO
from model.features.bench.media import speech, spoken_sentences

pytestmark = pytest.mark.slow  # Whisper
SENTENCE = "I went to see the new film last night and honestly it was wonderful."
RAVDESS_KIDS = DATA / "ravdess/audio/Actor_23/03-01-05-02-01-01-23.flac"  # angry, strong: "Kids are talking by the door"


@pytest.fixture(scope="module")
def asr() -> Transcriber:
    return Transcriber(AsrConfig(model=DEFAULT_ASR_MODEL))


@pytest.fixture(scope="module")
def sentence() -> np.ndarray:
    return speech(SENTENCE)


def test_wer_definition():
    assert normalise("Um, I'm   NOT sure… uh") == ["i'm", "not", "sure"]
    assert edit_distance(["a", "b", "c"], ["a", "x", "c", "d"]) == 2  # one substitution, one insertion
    assert wer(["kids are talking by the door"], ["Kids are talking by the door!"]) == 0.0
    assert wer(["a b c d"], ["a c d"]) == pytest.approx(0.25)


def test_known_sentence(asr, sentence):
    t = asr.transcribe(sentence)
    assert wer([SENTENCE], [t.text]) <= 0.15, t.text
    assert t.reason is None and t.language == "en" and t.segments


def test_real_ravdess_speech(asr):
    x, _ = sf.read(RAVDESS_KIDS, dtype="float32")
    assert wer(["Kids are talking by the door"], [asr.transcribe(x).text]) == 0.0


def test_word_timestamps_are_monotonic_and_inside_the_clip(asr, sentence):
    lead = np.zeros(16000, np.float32)  # 1 s of silence first: timestamps must map back past it
    signal = np.concatenate([lead, sentence, lead])
    t = asr.transcribe(signal)
    words = [w for s in t.segments for w in s.words]
    assert len(words) >= 8
    times = [v for w in words for v in (w.start, w.end)]
    assert times == sorted(times)
    voiced = np.flatnonzero(np.abs(signal) > 0.02) / 16000  # where espeak really speaks
    assert abs(words[0].start - voiced[0]) <= 0.5 and abs(words[-1].end - voiced[-1]) <= 0.5
    assert words[-1].end <= len(signal) / 16000
    assert all(0 <= w.probability <= 1 for w in words)
    for s in t.segments:
        assert s.start <= s.words[0].start and s.words[-1].end <= s.end
        assert s.avg_logprob <= 0 and 0 <= s.no_speech_prob <= 1


def test_speech_windows_end_at_the_last_join_that_fits():
    assert speech_windows(2500, [1000], 3000) == [(0, 2500)]  # all fits: one window, joins ignored
    assert speech_windows(7000, [1000, 2800, 4000, 6500], 3000) == [(0, 2800), (2800, 4000), (4000, 7000)]
    assert speech_windows(7000, [], 3000) == [(0, 3000), (3000, 6000), (6000, 7000)]  # no join: cut at the width
    assert speech_windows(0, [], 3000) == [(0, 1)]  # nothing: one frame, as the extractor gives
    assert chunk_joins([16000, 8160, 4000], 160).tolist() == [100, 150]  # 151 frames rounds down to 150


# Read with short pauses, so that the VAD hears one long stretch of speech that must be cut.
STORY = (
    "The morning train was late again, and the platform slowly filled with people.",
    "A woman in a green coat was reading a newspaper about the harbour bridge.",
    "Two students argued about whether the library would open before nine.",
    "When the train finally arrived, every seat in the first carriage was taken.",
    "The driver apologised twice and promised that the timetable would improve.",
    "Outside the window, the fields were covered in a thin layer of frost.",
    "A small dog slept under the bench, ignoring the noise around it.",
    "By the time we reached the city, the sun had melted most of the ice.",
    "The conductor checked our tickets and wished everyone a pleasant weekend.",
    "I bought a coffee at the station and walked the rest of the way to work.",
    "My colleague had already started the meeting without waiting for me.",
    "We discussed the budget, the new office, and the plans for the summer.",
    "Nobody agreed about the colour of the carpet, so we postponed the decision.",
    "After lunch the printer broke down and the afternoon passed very quietly.",
    "In the evening I took the same train home and it was on time for once.",
)


def test_speech_beyond_a_window_is_encoded_once_and_every_sentence_is_heard(asr):
    """Past 30 s, each window of speech is encoded once for both the voice and the words, and
    windows end between words: no sentence is lost and no sentence is garbled by a cut."""
    signal, _ = spoken_sentences(list(STORY), pause_s=0.4)
    assert len(signal) / 16000 > 60
    with encoder_calls(asr) as calls:  # log-mel frames of real audio in each encoder call
        a = asr.analyse(signal)
    hop = asr.whisper.feature_extractor.hop_length
    joins = chunk_joins([round((end - start) * 16000) for start, end in a.speech_chunks_s], hop)
    windows = speech_windows(round(a.speech_seconds * 16000) // hop, joins, 3000)
    assert all((b - w) % 2 == 0 for w, b in windows[:-1])  # whole encoder frames: the voice frames stay 20 ms apart
    assert len(windows) >= 3 and len(calls) == len(windows)
    assert sum(calls) <= windows[-1][1] + 1  # no frame encoded twice (the last window keeps the extractor's extra frame)
    assert len(a.frames) == sum(-(-(b - w) // 2) for w, b in windows)
    heard = set(normalise(a.transcript.text))
    for s in STORY:  # a lost sentence loses its long, rare words
        assert heard & set(sorted(normalise(s), key=len)[-3:]), (s, a.transcript.text)
    assert wer([" ".join(STORY)], [a.transcript.text]) <= 0.15, a.transcript.text


def test_windows_run_at_once_and_give_what_one_at_a_time_gives(asr, monkeypatch):
    """Past 30 s the windows are encoded and decoded two at a time, each on its own model
    replica; the words, their times and the voice frames are those of one window at a time."""
    signal, _ = spoken_sentences(list(STORY[:8]), pause_s=0.4)
    running, most, lock, encode = [0], [0], threading.Lock(), asr.whisper.encode

    def counting(features):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            return encode(features)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(asr.whisper, "encode", counting)
    together = asr.analyse(signal)
    assert most[0] == 2
    monkeypatch.setattr(asr, "_windows", ThreadPoolExecutor(max_workers=1))
    most[0] = 0
    alone = asr.analyse(signal)
    assert most[0] == 1
    assert together.transcript.segments == alone.transcript.segments and len(together.transcript.segments) > 2
    np.testing.assert_array_equal(together.frames, alone.frames)
    np.testing.assert_array_equal(together.frame_times, alone.frame_times)


def test_words_faster_than_anyone_speaks_are_made_up():
    def words(n: int, seconds: float) -> list[Word]:
        return [Word(f"w{i}", 12.64 + seconds * i / n, 12.64 + seconds * (i + 1) / n, 0.5) for i in range(n)]

    assert too_fast(words(9, 0.34), 12.0)  # "This is the first time I've ever seen this." in the last 0.34 s
    assert not too_fast(words(9, 2.5), 12.0)  # 3.6 words a second: ordinary speech
    assert not too_fast(words(6, 0.5), 12.0)  # exactly 12 a second is kept
    assert not too_fast(words(2, 0.0), 12.0)  # one or two squeezed words are not judged
    assert not too_fast([], 12.0)


def test_a_partial_window_is_padded_by_the_margin_and_nothing_is_made_up(asr, monkeypatch):
    """A 12 s clip is encoded in a window of its audio + 5 s, not twice its audio: the margin
    is what the words need, and with it the decoder adds no sentence of its own at the end."""
    from faster_whisper import WhisperModel

    signal, _ = spoken_sentences(list(STORY[:4]), pause_s=0.4)
    widths, encode = [], WhisperModel.encode
    monkeypatch.setattr(WhisperModel, "encode", lambda self, f: widths.append(f.shape[-1]) or encode(self, f))
    a = asr.analyse(signal)
    content = round(a.speech_seconds * 100)  # log-mel frames of speech, 100 a second
    assert 10 < a.speech_seconds < 20 and widths
    assert all(abs(w - (content + 500)) <= 3 for w in widths), (widths, content)
    assert wer([" ".join(STORY[:4])], [a.transcript.text]) <= 0.15, a.transcript.text
    assert a.transcript.segments[-1].words[-1].end <= len(signal) / 16000


def test_silence_and_tones_give_no_words_and_a_reason(asr):
    rng = np.random.default_rng(0)
    t = np.arange(48000) / 16000
    quiet = (0.003 * rng.standard_normal(48000)).astype(np.float32)
    chord = (0.2 * np.sin(2 * np.pi * np.outer(t, [220, 277, 330])).sum(1) / 3).astype(np.float32)
    for signal in (np.zeros(32000, np.float32), quiet, chord, np.zeros(800, np.float32)):
        result = asr.transcribe(signal)
        assert result.text == "" and result.segments == []
        assert result.reason


def test_base_is_multilingual_and_detects_other_languages(asr):
    if not asr.multilingual:
        pytest.skip("the default model is English only")
    t = asr.transcribe(speech("Bonjour, je suis très content de vous voir aujourd'hui.", voice="fr"))
    assert t.language == "fr" and t.language_probability > 0.5 and not t.english
    assert "bonjour" in normalise(t.text)  # transcribed in its own language, not translated


def test_two_threads_at_once_get_their_own_words(asr, sentence):
    ravdess, _ = sf.read(RAVDESS_KIDS, dtype="float32")
    want = [asr.transcribe(sentence).text, asr.transcribe(ravdess).text]
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda x: asr.transcribe(x).text, [sentence, ravdess] * 2))
    assert got == want * 2


def test_model_names_never_reach_a_hub(tmp_path):
    for name in ("small", "large-v3", "openai/whisper-tiny", "Systran/faster-whisper-base"):
        with pytest.raises(whisper_models.WhisperModelError, match="never downloaded"):
            whisper_models.resolve(name)
    (tmp_path / "model.bin").write_bytes(b"")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(whisper_models.WhisperModelError, match="missing tokenizer.json"):
        whisper_models.resolve(str(tmp_path))  # faster-whisper would fetch a tokenizer from the hub


def test_tiny_and_a_local_directory_resolve():
    tiny = whisper_models.resolve("tiny.en")
    assert whisper_models.resolve(str(tiny)) == tiny


def test_base_is_joined_once_and_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("MMIM_CACHE", str(tmp_path))
    path = whisper_models.resolve("base")
    assert path.parent == tmp_path and (path / "model.bin").stat().st_size == 145_217_607
    assert sorted(p.name for p in path.iterdir()) == ["SHA256SUMS.json", "config.json", "model.bin", "tokenizer.json", "vocabulary.json"]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary directory left behind
    mtime = (path / "model.bin").stat().st_mtime_ns
    assert whisper_models.resolve("base") == path and (path / "model.bin").stat().st_mtime_ns == mtime


@pytest.mark.parametrize("damage", ["half_joined", "flipped_byte", "no_sums"])
def test_a_damaged_base_in_the_cache_is_detected_by_hash_and_rebuilt(tmp_path, monkeypatch, damage):
    """A half-joined model.bin (a join killed part-way, copied in by hand), a flipped byte, or an
    entry from before the checksums: found by sha256, rebuilt, never handed to the recogniser."""
    from model import cache

    monkeypatch.setenv("MMIM_CACHE", str(tmp_path))
    path = whisper_models.resolve("base")
    model_bin = path / "model.bin"
    if damage == "half_joined":
        with open(model_bin, "r+b") as f:
            f.truncate(model_bin.stat().st_size // 2)
    elif damage == "flipped_byte":
        with open(model_bin, "r+b") as f:
            f.seek(1000)
            byte = f.read(1)
            f.seek(1000)
            f.write(bytes([byte[0] ^ 1]))
    else:
        (path / cache.SUMS).unlink()
    monkeypatch.setattr(cache, "_verified", set())  # a new process: nothing verified yet
    assert whisper_models.resolve("base") == path
    assert cache.sha256(model_bin) == whisper_models.BASE_MODEL_BIN_SHA256
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # the damaged copy is gone too


def test_loads_and_transcribes_offline_with_no_network(tmp_path, sentence):
    """In a fresh process where any socket connection raises, with HF_HUB_OFFLINE=1."""
    wav = tmp_path / "s.wav"
    sf.write(wav, sentence, 16000)
    code = f"""
import socket
def refuse(*a, **k):
    raise OSError("network use in an offline test")
socket.socket.connect = refuse
socket.create_connection = refuse
import soundfile as sf
from model.features.speech import AsrConfig, Transcriber

x, _ = sf.read({str(wav)!r}, dtype="float32")
print(Transcriber(AsrConfig(model={DEFAULT_ASR_MODEL!r})).transcribe(x).text)
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MMIM_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert wer([SENTENCE], [out.stdout.strip()]) <= 0.15


def test_onnxruntime_cpu_package_is_not_installed():
    # faster-whisper declares `onnxruntime`; it must not have been pulled in beside onnxruntime-gpu.
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version("onnxruntime")
    assert metadata.version("onnxruntime-gpu")
    import faster_whisper.vad  # its Silero VAD runs on onnxruntime-gpu's CPU provider

    assert faster_whisper.vad.get_speech_timestamps(np.zeros(16000, np.float32)) == []


def test_pocketsphinx_is_gone():
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version("pocketsphinx")
    assert "pocketsphinx" not in (REPO / "requirements.txt").read_text()
