"""The app's predictor (no Gradio): interpretation rules, one clip in any subset of modalities,
every bad-input case as FeatureError, the feature-spec check, batch/zip safety and the CLI."""
import dataclasses
import io
import json
import shutil
import threading
import zipfile
from contextlib import redirect_stdout

import numpy as np
import pytest

from app import interpret
from app.batch import read_transcripts, run_batch, unpack_zip
from app.config import AppConfig
from app.predictor import Predictor
from export.artifacts import ModelFolderError, write_manifest
from model.features import FeatureError
from model.features.bench.media import make_audio, make_clip
from tests.conftest import REPO


def diag(text=None, audio=None, visual=None, pct_audio=50.0, pct_visual=50.0):
    """Diagnostics dict as the predictor makes it; None Shapley value = modality absent."""
    out = {}
    for m, c, pct in (("text", text, None), ("audio", audio, pct_audio), ("visual", visual, pct_visual)):
        present = c is not None
        ba = None if m == "text" else -1.0 if present and text is not None else "absent"
        out[m] = {"present": present, "ba": ba, "ba_percentile": pct if isinstance(ba, float) else ba,
                  "cpc": 0.5 if present else "absent", "cpc_percentile": 50.0 if present else "absent",
                  "shapley": c if present else "absent", "contribution": 9.9 if present else "absent"}
    return out


# ---- interpretation: known answers ----

@pytest.mark.parametrize("score,bin7,label", [(-3.4, -3, "negative"), (-0.6, -1, "negative"), (-0.49, 0, "neutral"),
                                              (0.0, 0, "neutral"), (0.51, 1, "positive"), (2.5, 2, "positive"), (9.0, 3, "positive")])
def test_bin7_and_label_agree(score, bin7, label):
    assert interpret.bin7(score) == bin7
    assert interpret.label(score) == label


def test_summary_says_when_voice_and_words_disagree():
    line = interpret.summary(0.3, diag(text=0.8, audio=-0.5, visual=0.02))
    assert line.startswith("The words and the voice disagree: the words pull towards positive (+0.80), the voice pulls towards negative (-0.50).")


def test_summary_small_opposite_pull_is_not_disagreement():
    # -0.15 is under DISAGREE_SHARE (25 %) of +0.8: the words drive, nothing disagrees.
    assert interpret.summary(1.0, diag(text=0.8, audio=-0.15, visual=0.3)) == (
        "The words drive the score positive (+0.80), and the face agrees.")


def test_summary_single_modality_and_ba_percentiles():
    assert interpret.summary(0.0, diag(text=0.4)) == "Only the words were available; the score rests on them alone."
    line = interpret.summary(-1.0, diag(text=-0.05, audio=-0.02, pct_audio=3.6))
    assert line == ("No modality moves the score by 0.1 or more from the model's baseline. "
                    "The voice is less expected for these words than 96 % of training clips.")
    line = interpret.summary(0.0, diag(text=0.0, audio=0.0, visual=0.0, pct_audio=0.4, pct_visual=20.0))
    assert "voice is outside what the model saw in training" in line and "face" not in line


def test_summary_reads_shapley_not_leave_one_out():
    # Every leave-one-out value in diag() is 9.9; the line must come from the Shapley values.
    assert "(+0.80)" in interpret.summary(1.0, diag(text=0.8, audio=0.01, visual=0.02))


def test_outside_training():
    assert interpret.outside_training(0.5) and not interpret.outside_training(1.0)
    assert not interpret.outside_training("absent") and not interpret.outside_training(None)


def test_flags_name_absent_modalities_and_automatic_text():
    flags = interpret.flags(diag(text=0.1, audio=0.1), {"visual_absent_reason": "no face", "voiced_share": 0.1},
                            "automatic")
    assert flags == ["visual absent: no face", "transcript is automatic (speech recogniser); it may be wrong",
                     "only 10% of the audio is voiced speech"]


def test_flags_say_how_much_of_a_distrusted_modality_the_score_keeps():
    d = diag(text=0.1, audio=0.4, visual=-0.2)
    d["audio"]["trust"], d["visual"]["trust"] = 0.0, 0.5
    flags = interpret.flags(d, {}, "given")
    assert flags == ["the voice is unlike most training clips: the score keeps none of its pull",
                     "the face is unlike most training clips: the score keeps 50% of its pull"]
    d["audio"]["trust"], d["visual"]["trust"] = 1.0, 1.0
    assert interpret.flags(d, {}, "given") == []


# ---- the predictor on real generated clips ----

@pytest.fixture(scope="module")
def predictor(clip_model_dir):
    return Predictor(clip_model_dir, AppConfig(threads=1, max_duration_s=10, max_upload_mb=5))


@pytest.fixture(scope="module")
def media(tmp_path_factory, clip_mp4):
    root = tmp_path_factory.mktemp("app_media")
    return {
        "clip": clip_mp4,
        "silent_no_face": make_clip(root / "blank.mp4", audio=False, face=False, seconds=1.0, size=(240, 180), fps=10),
        "speech": make_audio(root / "speech.wav"),
        "long": make_audio(root / "long.ogg", text=None, seconds=12.0),
        "corrupt": _write(root / "corrupt.mp4", b"\x00not a video" * 50),
        "root": root,
    }


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_clip_with_text_has_every_modality(predictor, media):
    r = predictor.predict(text="I loved this film, it was wonderful.", video=media["clip"])
    assert -3 <= r["score"] <= 3
    assert r["label"] == interpret.label(r["score"]) and r["bin7"] == interpret.bin7(r["score"])
    assert r["text_source"] == "given" and r["transcript"] == "I loved this film, it was wonderful."
    for m in ("text", "audio", "visual"):
        d = r["diagnostics"][m]
        assert d["present"] and isinstance(d["cpc"], float) and isinstance(d["contribution"], float)
        assert d["cpc"] <= r["cpc_bound"] + 1e-6
    assert r["diagnostics"]["text"]["ba"] is None
    assert isinstance(r["diagnostics"]["audio"]["ba"], float) and isinstance(r["diagnostics"]["visual"]["ba"], float)
    assert set(r["timings"]) >= {"decode", "audio", "face", "expression", "text", "model", "total"}
    assert r["summary"] == interpret.summary(r["score"], r["diagnostics"])
    # Shapley values add up to the score minus the baseline, and percentiles are percentiles.
    total = sum(r["diagnostics"][m]["shapley"] for m in ("text", "audio", "visual"))
    assert total == pytest.approx(r["score"] - r["shapley_baseline"], abs=1e-4)
    assert set(r["interactions"]) == {"text×audio", "text×visual", "audio×visual"}
    for m in ("audio", "visual"):
        assert 0 <= r["diagnostics"][m]["ba_percentile"] <= 100 and 0 <= r["diagnostics"][m]["cpc_percentile"] <= 100
    json.dumps(r)  # plain JSON all the way down (the CLI prints it)


def test_a_face_far_outside_training_is_left_out_of_the_score(predictor, media):
    clip = predictor.frontend.extract(text="I loved this film, it was wonderful.", video=media["clip"])
    sample = clip.to_sample("clip")
    # A face stream stuck at a value no expression CNN or face box can give.
    odd = dataclasses.replace(sample, features={**sample.features, "visual": np.full_like(sample.features["visual"], 5.0)})
    raw = predictor.model.run(predictor.model.collate([sample, odd]))
    served = predictor.model.predict([sample, odd])
    # The graph's CPC puts the odd face below every training clip; the served score then
    # drops the face's Shapley value, and the values still add up.
    assert raw["cpc_visual_percentile"][1] == 0.0 and served["trust_visual"][1] == 0.0
    assert served["shapley_visual"][1] == 0.0
    assert served["score"][1] == pytest.approx(raw["score"][1] - raw["shapley_visual"][1], abs=1e-5)
    parts = sum(served[f"shapley_{m}"] for m in ("text", "audio", "visual")) + served["shapley_baseline"]
    np.testing.assert_allclose(served["score"], parts, atol=1e-5)
    # Whatever the weights, the graph's own score is kept beside the served one.
    np.testing.assert_array_equal(served["fused_score"], raw["score"])
    for i in range(2):
        kept = sum((1 - served[f"trust_{m}"][i]) * raw[f"shapley_{m}"][i] for m in ("audio", "visual"))
        assert served["score"][i] == pytest.approx(raw["score"][i] - kept, abs=1e-5)


def test_absent_modalities_show_absent_not_numbers(predictor):
    r = predictor.predict(text="What a great and happy day this is.")
    for m in ("audio", "visual"):
        assert r["diagnostics"][m] == {"present": False, "ba": "absent", "ba_percentile": "absent", "cpc": "absent",
                                       "cpc_percentile": "absent", "shapley": "absent", "contribution": "absent",
                                       "trust": "absent", "outside_training": []}
    assert r["interactions"] == {"text×audio": "absent", "text×visual": "absent", "audio×visual": "absent"}
    assert isinstance(r["diagnostics"]["text"]["shapley"], float)
    assert r["diagnostics"]["text"]["shapley"] == pytest.approx(r["score"] - r["shapley_baseline"], abs=1e-5)
    assert r["summary"] == "Only the words were available; the score rests on them alone."
    assert "audio absent: no audio given" in r["flags"] and "visual absent: no video given" in r["flags"]


def test_audio_without_text_is_transcribed_and_marked_automatic(predictor, media):
    r = predictor.predict(audio=media["speech"])
    assert r["text_source"] == "automatic" and r["transcript"]
    assert r["diagnostics"]["visual"]["present"] is False and r["diagnostics"]["audio"]["present"]
    assert any("automatic" in f for f in r["flags"])


def test_video_alone_uses_its_sound_track(predictor, media):
    r = predictor.predict(video=media["clip"])
    assert r["diagnostics"]["audio"]["present"] and r["diagnostics"]["visual"]["present"]


@pytest.mark.parametrize("case,kwargs,message", [
    ("nothing", {}, "nothing to analyse"),
    ("corrupt", {"video": "corrupt"}, "corrupt.mp4"),
    ("too long", {"audio": "long"}, "long.ogg"),
    ("missing", {"audio": "missing"}, "file not found"),
    ("nothing usable", {"video": "silent_no_face"}, "nothing usable"),
])
def test_bad_inputs_raise_feature_error_with_a_message(predictor, media, case, kwargs, message):
    kwargs = {k: (media["root"] / "missing.wav" if v == "missing" else media[v]) for k, v in kwargs.items()}
    with pytest.raises(FeatureError, match=message):
        predictor.predict(**kwargs)


def test_limits_and_asr_switch_come_from_the_app_config(clip_model_dir, media):
    # Limits and --no-asr differ from the featurizing front end's: that is not a spec mismatch.
    small = Predictor(clip_model_dir, AppConfig(threads=1, max_upload_mb=0.01, asr=False))
    with pytest.raises(FeatureError, match="limit"):
        small.predict(video=media["clip"])
    assert small.predict(text="It was fine.")["text_source"] == "given"


def test_refuses_a_model_trained_on_other_features(clip_model_dir, tmp_path):
    other = tmp_path / "model"
    shutil.copytree(clip_model_dir, other)
    spec = json.loads((other / "feature_spec.json").read_text())
    spec["audio"]["rate_hz"] = 25.0
    (other / "feature_spec.json").write_text(json.dumps(spec))
    manifest = json.loads((other / "manifest.json").read_text())
    write_manifest(other, **{k: v for k, v in manifest.items() if k != "files"})
    with pytest.raises(ModelFolderError, match="retrain or use a matching model"):
        Predictor(other, AppConfig(threads=1))


def test_concurrent_requests_match_sequential(predictor, media):
    expected = predictor.predict(text="It was fine, nothing special.", video=media["clip"])["score"]
    scores, errors = [], []

    def call():
        try:
            scores.append(predictor.predict(text="It was fine, nothing special.", video=media["clip"])["score"])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors and scores == pytest.approx([expected] * 4, abs=1e-6)


# ---- batch ----

def test_batch_zip_is_flattened_and_bad_clips_get_error_rows(predictor, media, tmp_path):
    archive = tmp_path / "clips.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(media["clip"], "../../escape/clip.mp4")  # path traversal attempt
        z.write(media["speech"], "/abs/speech.wav")
        z.write(media["corrupt"], "sub/corrupt.mp4")
        z.writestr("notes.txt", "ignored")
    transcripts = _write(tmp_path / "t.csv", b"file,text\nclip.mp4,I loved this film\nspeech,What a great day\n")
    seen = []
    path, rows = run_batch(predictor, [archive], str(transcripts), tmp_path / "out", predictor.config,
                           progress=lambda i, n, name: seen.append((i, n)))
    assert not (tmp_path.parent / "escape").exists() and not any(tmp_path.rglob("escape"))
    by_file = {r["file"]: r for r in rows}
    assert set(by_file) == {"clip.mp4", "speech.wav", "corrupt.mp4"}
    assert by_file["clip.mp4"]["transcript"] == "I loved this film" and by_file["clip.mp4"]["error"] == ""
    assert by_file["speech.wav"]["text_source"] == "given" and by_file["speech.wav"]["present_visual"] is False
    assert "corrupt.mp4" in by_file["corrupt.mp4"]["error"] and by_file["corrupt.mp4"]["score"] == ""
    assert seen[0] == (0, 3) and seen[-1] == (3, 3)
    assert path.read_text().splitlines()[0].startswith("file,segment_start,segment_end,score,label,bin7")


def test_zip_limits(media, tmp_path):
    config = AppConfig(max_batch_files=2, max_upload_mb=1)
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as z:
        for i in range(3):
            z.write(media["speech"], f"c{i}.wav")
    with pytest.raises(FeatureError, match="limit is 2"):
        unpack_zip(many, tmp_path, config)
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("big.wav", b"\0" * (2 * 2**20))
    with pytest.raises(FeatureError, match="limit per clip"):
        unpack_zip(bomb, tmp_path, config)
    with pytest.raises(FeatureError, match="not a readable zip"):
        unpack_zip(_write(tmp_path / "fake.zip", b"PK nonsense"), tmp_path, config)
    with pytest.raises(FeatureError, match="file,text"):
        read_transcripts(_write(tmp_path / "bad.csv", b"name,transcript\na,b\n"))


# ---- CLI ----

def test_cli_prints_json(clip_model_dir, media):
    from app.predict import main

    out = io.StringIO()
    with redirect_stdout(out):
        status = main([str(media["clip"]), "--text", "I hated every minute of it.", "--model-dir", str(clip_model_dir), "--threads", "1"])
    result = json.loads(out.getvalue())
    assert status == 0 and result["transcript"] == "I hated every minute of it." and -3 <= result["score"] <= 3
    assert main([str(media["corrupt"]), "--model-dir", str(clip_model_dir)]) == 2


# ---- the shipped examples ----

def test_examples_are_small_and_all_run(predictor):
    from app.ui import EXAMPLES_DIR, load_examples

    assert sum(p.stat().st_size for p in EXAMPLES_DIR.iterdir()) < 1_000_000
    examples = load_examples()
    assert len(examples) == len(json.loads((EXAMPLES_DIR / "examples.json").read_text())) >= 5
    for text, audio, video in examples:
        r = predictor.predict(text=text or None, audio=audio, video=video)
        assert -3 <= r["score"] <= 3
        if video:  # the FER faces are found by the detector, and the video's own sound is the audio
            assert r["diagnostics"]["visual"]["present"] and r["diagnostics"]["audio"]["present"]
        if not text:
            assert r["text_source"] == "automatic"


def test_serving_never_imports_torch(clip_model_dir, clip_mp4, tmp_path):
    """The app scores a clip, an audio file, words and a timeline without torch (or anything
    that pulls it in): a process that started without it ends without it."""
    import subprocess
    import sys

    from model.features.bench.media import make_audio

    audio = make_audio(tmp_path / "speech.wav")
    script = (
        "import sys\n"
        "from app.config import AppConfig\nfrom app.predictor import Predictor\n"
        f"p = Predictor({str(clip_model_dir)!r}, AppConfig(threads=1))\n"
        f"p.predict(video={str(clip_mp4)!r}, text='nice')\np.predict(audio={str(audio)!r})\n"
        f"p.predict(text='a fine day')\np.timeline(video={str(clip_mp4)!r})\n"
        "import app.ui\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout[-500:]


def test_warming_up_at_start_changes_no_result(clip_model_dir, clip_mp4):
    """The start-up pass over every model (so the first user waits no longer than the next)
    leaves nothing behind that changes a prediction."""
    cold = Predictor(clip_model_dir, AppConfig(threads=1, warm_up=False))
    warm = Predictor(clip_model_dir, AppConfig(threads=1))
    assert warm.warm_up() > 0
    a, b = cold.predict(video=clip_mp4), warm.predict(video=clip_mp4)
    assert a["score"] == b["score"] and a["diagnostics"] == b["diagnostics"] and a["transcript"] == b["transcript"]
