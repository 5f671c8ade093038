"""Feature front end: formats, every bad-input case, real RAVDESS audio and FER faces, thread safety."""
from __future__ import annotations

import csv
import json
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
import soundfile as sf

from model.features import (AUDIO_DIM, AUDIO_NAMES, VISUAL_DIM, VISUAL_NAMES, FeatureError, FrontEnd,
                            FrontEndConfig)
from tests.conftest import DATA
from model.features.bench.media import make_audio, make_clip, no_face_frame, two_faces_frame

FER_HAPPY = 3


@pytest.fixture(scope="module")
def fe() -> FrontEnd:
    return FrontEnd(FrontEndConfig(asr=False))


@pytest.fixture(scope="module")
def fe_asr() -> FrontEnd:
    return FrontEnd(FrontEndConfig(asr=True))


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Generated once per module: the clips most tests share."""
    d = tmp_path_factory.mktemp("media")
    return {
        "clip": make_clip(d / "clip.mp4", seconds=3),
        "mute": make_clip(d / "mute.mp4", seconds=1, audio=False),
        "speech": make_audio(d / "speech.wav"),
        "dir": d,
    }


def _quality_absent(features, modality: str) -> str:
    assert len(getattr(features, modality)) == 0
    return features.quality[f"{modality}_absent_reason"]


# ---------------------------------------------------------------- the happy path


def test_clip_gives_all_modalities_at_the_configured_rates(fe, media):
    f = fe.extract(video=media["clip"], text="I loved it")
    assert f.audio.shape == (30, AUDIO_DIM) and f.audio.dtype == np.float32  # 3 s at 10 Hz
    assert f.visual.shape == (15, VISUAL_DIM) and f.visual.dtype == np.float32  # 3 s at 5 fps
    assert np.isfinite(f.audio).all() and np.isfinite(f.visual).all()
    assert (f.text, f.text_source) == ("I loved it", "given")
    assert f.quality["face_share"] == 1.0 and f.quality["faces_max"] == 1
    assert f.quality["voiced_share"] > 0.5
    np.testing.assert_allclose(f.visual[:, :7].sum(axis=1), 1.0, atol=1e-4)  # expression probabilities
    cx, cy, w, h, present = f.visual[0, 7:]
    assert 0.4 < cx < 0.5 and 0.1 < w < 0.3 and present == 1.0  # the astronaut, near the centre
    assert set(f.timings) == {"decode", "audio", "face", "expression", "text"}
    sample = f.to_sample("v_1", 0.5)
    assert sample.features["audio"] is f.audio and sample.text == "I loved it" and sample.label == 0.5


def test_the_sound_is_handed_over_before_the_frames_are_decoded(media):
    """With on_audio, the sound comes first, in a pass of its own (so that the speech pass can
    start), and the result is the same as one pass over the file."""
    from model.features.decode import decode

    events = []
    two = decode(media["clip"], on_audio=lambda a: events.append(("audio", len(a))),
                 on_frame=lambda rgb, t: events.append(("frame", t)))
    one_frames = []
    one = decode(media["clip"], on_frame=lambda rgb, t: one_frames.append(t))
    assert events[0][0] == "audio" and [e[0] for e in events[1:]] == ["frame"] * (len(events) - 1)
    assert len(events) > 5 and [t for _, t in events[1:]] == one_frames
    np.testing.assert_array_equal(two.audio, one.audio)
    assert two.duration_s == one.duration_s and events[0][1] == len(one.audio)
    # A file with one stream is one pass: on_audio is not called.
    mute = []
    decode(media["mute"], on_audio=mute.append)
    assert mute == []


def test_names_and_spec(fe):
    assert len(AUDIO_NAMES) == AUDIO_DIM == 512 and len(VISUAL_NAMES) == VISUAL_DIM == 12  # Whisper base encoder
    spec = json.loads(json.dumps(fe.spec()))  # must be JSON-serialisable
    assert spec["audio"]["names"] == list(AUDIO_NAMES) and spec["visual"]["names"] == list(VISUAL_NAMES)
    assert spec["audio"]["rate_hz"] == 10.0 and spec["visual"]["fps"] == 5.0
    assert len(spec["visual"]["expression_model"]["sha256"]) == 64
    assert {"av", "ctranslate2", "faster-whisper", "opencv-python-headless"} <= set(spec["packages"])
    assert spec["audio"]["whisper_model"] == "base" and len(spec["audio"]["whisper_model_bin_sha256"]) == 64
    assert "asr" not in spec["text"]  # the recogniser does not shape the features the model was trained on


@pytest.mark.parametrize("ext", [".mov", ".mkv", ".webm", ".avi"])
def test_video_containers(fe, tmp_path, ext):
    f = fe.extract(video=make_clip(tmp_path / f"c{ext}", seconds=1, size=(320, 240)))
    assert 9 <= len(f.audio) <= 11 and 5 <= len(f.visual) <= 6


@pytest.mark.parametrize("ext", [".mp3", ".m4a", ".flac", ".ogg"])
def test_audio_containers(fe, tmp_path, ext):
    f = fe.extract(audio=make_audio(tmp_path / f"a{ext}"))
    assert len(f.audio) >= 30 and f.quality["voiced_share"] > 0.5
    assert _quality_absent(f, "visual") == "no video given"


def test_speech_recognition_when_no_text(fe_asr, media):
    from model.features.bench.asr import wer
    from model.features.bench.media import SPEECH

    f = fe_asr.extract(audio=media["speech"])
    assert f.text_source == "automatic" and wer([SPEECH], [f.text]) <= 0.15, f.text
    assert f.transcript.text == f.text and f.transcript.segments[0].words  # timestamps travel with the features
    assert f.quality["asr_language"] == "en"
    again = fe_asr.extract(audio=media["speech"])
    assert again.text == f.text  # no decoder state leaks between clips


def test_speech_recognition_on_real_ravdess(fe_asr):
    f = fe_asr.extract(audio=DATA / "ravdess/audio/Actor_01/03-01-01-01-01-01-01.flac")
    assert f.text_source == "automatic" and f.text.lower().strip(".!") == "kids are talking by the door"


def test_other_languages_are_flagged_not_scored(fe_asr, tmp_path):
    import soundfile as sf

    from model.features.bench.media import speech

    if not fe_asr.transcriber.multilingual:
        pytest.skip("the default model is English only")
    wav = tmp_path / "fr.wav"
    sf.write(wav, speech("Bonjour, je suis très content de vous voir aujourd'hui.", voice="fr"), 16000)
    f = fe_asr.extract(audio=wav)
    assert f.text == "" and f.text_source == "absent" and len(f.audio) > 0
    assert f.quality["text_absent_reason"].startswith("transcript uncertain: the words were not scored")
    assert "most likely fr" in f.quality["text_absent_reason"] and f.quality["asr_gate"]["english_probability"] < 0.5
    assert "Bonjour" in f.quality["asr_transcript"]


def test_given_text_wins_over_asr(fe_asr, media):
    f = fe_asr.extract(audio=media["speech"], text="typed by hand")
    assert (f.text, f.text_source) == ("typed by hand", "given")


def test_real_ravdess_audio_features(fe):
    rows = list(csv.DictReader(open(DATA / "ravdess/metadata.csv", newline="")))[:3]
    for r in rows:
        x, sr = sf.read(DATA / "ravdess" / r["file"], dtype="float32")
        feats, q = fe.audio_features(x, sr)
        # 10 Hz over the speech the VAD keeps: the leading and trailing silence is left out.
        assert 10 <= len(feats) < float(r["duration_s"]) * 10
        assert 0.3 < q["voiced_share"] < 1.0 and q["voiced_share"] == pytest.approx(len(feats) / 10 / float(r["duration_s"]), abs=0.05)
        assert feats.shape[1] == AUDIO_DIM and np.isfinite(feats).all() and feats.std() > 0.05
    # 48 kHz input gives nearly the same features as the 16 kHz original (resampling error only)
    from scipy.signal import resample_poly

    up = resample_poly(x, 3, 1).astype(np.float32)
    again = fe.audio_features(up, 48000)[0]
    assert again.shape == feats.shape
    corr = np.corrcoef(again.ravel(), feats.ravel())[0, 1]
    assert corr > 0.95


def test_the_words_and_the_voice_come_from_one_encoder_pass(fe_asr, media, monkeypatch):
    calls = []
    encode = fe_asr.voice.whisper.encode
    monkeypatch.setattr(fe_asr.voice.whisper, "encode", lambda x: calls.append(x.shape) or encode(x))
    f = fe_asr.extract(audio=media["speech"])
    assert f.text_source == "automatic" and len(f.audio) > 0
    assert len(calls) == 1, calls  # one window, encoded once for the voice, the language and the words


def _fer_test_faces(label: int, n: int) -> np.ndarray:
    from model.features.fer import load_fer

    d = load_fer()
    keep = (d["split"] == "test") & (d["y"] == label) & (d["blank"] == 0)
    return d["x"][keep][:n]


def _bordered(face48: np.ndarray) -> np.ndarray:
    """A FER crop as the app would see it: upscaled 3x, with context around it, RGB."""
    up = cv2.resize(face48, (144, 144), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(cv2.copyMakeBorder(up, 72, 72, 72, 72, cv2.BORDER_REPLICATE), cv2.COLOR_GRAY2RGB)


def test_real_fer_faces_through_the_visual_path(fe):
    faces = _fer_test_faces(FER_HAPPY, 60)
    feats, q = fe.visual_features([_bordered(x) for x in faces], independent=True)
    assert feats.shape == (60, VISUAL_DIM)
    found = feats[:, -1] == 1
    assert found.mean() > 0.5  # Haar needs context: about 70 % of FER test faces are found
    assert (feats[found, :7].argmax(1) == FER_HAPPY).mean() > 0.7  # happy is FER's easiest class
    direct = fe.expression(faces)
    assert (direct.argmax(1) == FER_HAPPY).mean() > 0.7


def test_thread_safety(fe_asr, media):
    serial = [fe_asr.extract(video=media["clip"]), fe_asr.extract(audio=media["speech"])]
    jobs = [dict(video=media["clip"]), dict(audio=media["speech"])] * 3
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda kw: fe_asr.extract(**kw), jobs))
    for i, r in enumerate(results):
        want = serial[i % 2]
        np.testing.assert_array_equal(r.audio, want.audio)
        np.testing.assert_array_equal(r.visual, want.visual)
        assert r.text == want.text


# ---------------------------------------------------------------- broken files


def test_zero_byte_file(fe, tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(FeatureError, match="empty"):
        fe.extract(video=tmp_path / "empty.mp4")


def test_truncated_mp4(fe, media, tmp_path):
    data = media["clip"].read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: lost
    with pytest.raises(FeatureError, match="not a media file"):
        fe.extract(video=tmp_path / "cut.mp4")


def test_corrupt_mp4_keeps_what_decodes(fe, media, tmp_path):
    data = bytearray(media["clip"].read_bytes())
    i = len(data) // 2
    data[i:i + 2000] = np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    (tmp_path / "bad.mp4").write_bytes(bytes(data))
    f = fe.extract(video=tmp_path / "bad.mp4")
    assert f.quality["damaged_packets"] >= 1
    assert len(f.audio) > 20 and len(f.visual) > 10


def test_text_file_renamed_mp4(fe, tmp_path):
    (tmp_path / "notes.mp4").write_text("this is just text, not a video\n" * 50)
    with pytest.raises(FeatureError, match="not a media file"):
        fe.extract(video=tmp_path / "notes.mp4")


def test_unknown_format(fe, tmp_path):
    (tmp_path / "blob.xyz").write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(FeatureError, match="not a media file"):
        fe.extract(audio=tmp_path / "blob.xyz")


def test_missing_file(fe, tmp_path):
    with pytest.raises(FeatureError, match="not found"):
        fe.extract(video=tmp_path / "nope.mp4")


def test_file_over_max_bytes(media):
    small = FrontEnd(FrontEndConfig(max_bytes=10_000, asr=False))
    with pytest.raises(FeatureError, match="MiB limit"):
        small.extract(video=media["clip"])


def test_nothing_given(fe):
    with pytest.raises(FeatureError, match="nothing to analyse"):
        fe.extract()


# ---------------------------------------------------------------- missing or wrong streams


def test_video_without_audio_track(fe, media):
    f = fe.extract(video=media["mute"])
    assert _quality_absent(f, "audio") == "the video has no audio track"
    assert len(f.visual) == 5


def test_audio_only_file_in_video_slot(fe, media):
    f = fe.extract(video=media["speech"])
    assert _quality_absent(f, "visual") == "the video file has no video stream"
    assert len(f.audio) >= 30


def test_separate_audio_file_replaces_the_video_track(fe, media):
    f = fe.extract(video=media["mute"], audio=media["speech"])
    assert len(f.visual) == 5 and len(f.audio) >= 30


def test_video_file_in_audio_slot_has_no_audio(fe, media):
    with pytest.raises(FeatureError, match="no audio stream"):
        fe.extract(audio=media["mute"])


# ---------------------------------------------------------------- faces


def test_no_face_in_any_frame(fe, tmp_path):
    f = fe.extract(video=make_clip(tmp_path / "rocket.mp4", face=False, seconds=1))
    assert _quality_absent(f, "visual") == "no face"
    assert f.quality["face_share"] == 0.0 and 10 <= len(f.audio) <= 11  # AAC may add a few ms


def test_several_faces_takes_the_largest(fe, tmp_path):
    f = fe.extract(video=make_clip(tmp_path / "two.mp4", face="two", seconds=1, audio=False))
    assert f.quality["faces_max"] >= 2
    cx, _, w, _, _ = f.visual[0, 7:]
    assert cx < 0.4 and w > 0.15  # the big face on the left, not the small one on the right


def test_visual_features_on_frames(fe):
    feats, q = fe.visual_features([two_faces_frame(), no_face_frame()])
    assert feats.shape == (2, VISUAL_DIM) and q["face_frames"] == 1
    assert feats[1].sum() == 0.0  # a frame without a face is all zeros, flag included


def test_nothing_usable_is_an_error(fe, tmp_path):
    clip = make_clip(tmp_path / "rocket.mp4", face=False, seconds=1, audio=False)
    with pytest.raises(FeatureError, match="nothing usable"):
        fe.extract(video=clip)


# ---------------------------------------------------------------- odd media


def test_one_frame_video(fe, tmp_path):
    f = fe.extract(video=make_clip(tmp_path / "one.mp4", frames=1, audio=False))
    assert f.visual.shape == (1, VISUAL_DIM) and f.visual[0, -1] == 1.0


def test_silence(fe_asr, tmp_path):
    f = fe_asr.extract(video=make_clip(tmp_path / "quiet.mp4", text=None, seconds=2))
    assert f.quality["voiced_share"] == 0 and len(f.audio) == 0  # no speech, no voice
    assert "voice activity detection found none" in f.quality["audio_absent_reason"]
    assert f.text_source == "absent" and f.text == ""  # no hallucinated words
    assert "voice activity detection found none" in f.quality["text_absent_reason"]
    assert len(f.visual) == 10


def test_clip_over_duration_limit(media):
    short = FrontEnd(FrontEndConfig(max_duration_s=2.0, asr=False))
    with pytest.raises(FeatureError, match="over the 2 s limit"):
        short.extract(video=media["clip"])
    with pytest.raises(FeatureError, match="over the 2 s limit"):
        short.extract(audio=media["speech"])


def test_huge_resolution_is_resized(fe, tmp_path):
    f = fe.extract(video=make_clip(tmp_path / "huge.mp4", frames=2, fps=5, size=(4000, 3000), audio=False))
    assert f.quality["width_in"] == 4000 and len(f.visual) == 2 and f.visual[0, -1] == 1.0


@pytest.mark.parametrize("rate,channels,ext", [(8000, 1, ".wav"), (44100, 2, ".mp3"), (48000, 2, ".flac")])
def test_odd_sample_rates(fe, tmp_path, rate, channels, ext):
    f = fe.extract(audio=make_audio(tmp_path / f"a{ext}", sample_rate=rate, channels=channels, seconds=3.0))
    assert f.quality["sample_rate_in"] == rate and f.quality["channels_in"] == channels
    assert 30 <= len(f.audio) <= 31 and f.quality["voiced_share"] > 0.5


# ---------------------------------------------------------------- text


def test_non_utf8_text(fe):
    with pytest.raises(FeatureError, match="not valid UTF-8"):
        fe.extract(text="café".encode("latin-1"))


def test_utf8_bytes_text(fe):
    assert fe.extract(text="café ☕".encode()).text == "café ☕"


def test_empty_text_is_absent(fe, media):
    f = fe.extract(video=media["mute"], text="   \n")
    assert (f.text, f.text_source) == ("", "absent")
    with pytest.raises(FeatureError, match="nothing"):
        fe.extract(text="")


def test_long_text_is_truncated(fe):
    f = fe.extract(text="x" * 10_000)
    assert len(f.text) == 2000 and f.text_source == "given"
    assert f.quality["text_truncated"] is True and f.quality["text_chars_original"] == 10_000
    assert len(f.audio) == 0 and len(f.visual) == 0


def test_yuface_finds_a_tilted_face_that_haar_misses():
    import cv2

    from model.features.visual import DetectorConfig, FaceDetector
    from model.features.bench.media import _face_image

    canvas = np.full((480, 640), 110, np.uint8)
    face = cv2.cvtColor(cv2.resize(_face_image(tight=True), (240, 240)), cv2.COLOR_RGB2GRAY)
    turn = cv2.getRotationMatrix2D((120, 120), 30, 1.0)
    canvas[120:360, 200:440] = cv2.warpAffine(face, turn, (240, 240), borderMode=cv2.BORDER_REPLICATE)
    found = FaceDetector(DetectorConfig()).detect(canvas)
    assert len(found) == 1 and 200 <= found[0].x + found[0].w / 2 <= 440
    assert FaceDetector(DetectorConfig.haar()).detect(canvas) == []  # the frontal cascade does not see it


def test_our_yuface_call_gives_the_wheels_boxes_and_keeps_no_memory():
    """yuface_boxes calls libfacedetection with a reused buffer: the same boxes as the wheel's
    own yuface.detect (which leaks a 36 KB buffer per call), and memory that stays put."""
    import cv2

    from model.features.bench.media import face_frame, no_face_frame, two_faces_frame
    from model.features.visual import _yuface_module, yuface_boxes

    wheel, rng = _yuface_module(), np.random.default_rng(0)
    for make in (face_frame, two_faces_frame, no_face_frame):
        for size in ((640, 480), (160, 120)):
            image = cv2.cvtColor(make(size), cv2.COLOR_RGB2BGR)
            noisy = np.clip(image.astype(int) + rng.integers(-20, 20, image.shape), 0, 255).astype(np.uint8)
            for conf in (0.3, 0.5):
                assert np.array_equal(yuface_boxes(noisy, conf), wheel.detect(noisy, conf=conf)[1])
    image = cv2.cvtColor(face_frame((320, 240)), cv2.COLOR_RGB2BGR)
    assert len(yuface_boxes(image, 0.5)) == 1

    def rss_kb() -> int:
        return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0])

    for _ in range(20):
        yuface_boxes(image, 0.5)
    before = rss_kb()
    for _ in range(300):
        yuface_boxes(image, 0.5)
    assert rss_kb() - before < 3000  # the wheel's own call grows about 10,000 KB over 300 calls
