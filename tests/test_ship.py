"""The shipped clip model: its recipe's matching logic, and the folder in weights/."""

import numpy as np
import pytest

from export.ship.corpora import FACE_VALENCE, STRONG, VOICE_VALENCE, face_clip
from export.ship.tuples import match_tuples, valence_bin

from tests.conftest import REPO, SHIPPED


def test_valence_bins_split_polarity_and_strength():
    assert [valence_bin(v) for v in (-3, -1.5, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0)] == [0, 0, 1, 2, 2, 3, 4, 4]
    # Every emotion keeps its polarity at both intensities; neutral is the only 0.
    for emotion, v in VOICE_VALENCE.items():
        assert np.sign(v) == np.sign(v * STRONG)
    assert [e for e, v in VOICE_VALENCE.items() if v == 0] == [e for e, v in FACE_VALENCE.items() if v == 0] == ["neutral"]


def test_matched_tuples_share_a_valence_bin():
    rng = np.random.default_rng(0)
    texts = [("mosi", f"m{i}", y) for i, y in enumerate(np.linspace(-3, 3, 41))]
    texts += [("sst", f"s{i}", y) for i, y in enumerate(np.linspace(-3, 3, 41))]
    voices = [{"id": f"v{i}", "valence": v} for i, v in enumerate((-2.5, -1.2, 0.0, 1.0, 2.5))]
    faces = [{"id": f"f{i}", "valence": v, "face_found": True} for i, v in enumerate((-2.0, -1.2, 0.0, 1.0, 2.0))]
    faces.append({"id": "lost", "valence": 2.0, "face_found": False})
    tuples = match_tuples(texts, voices, faces, 300, sst_share=0.5, rng=rng)
    assert len(tuples) == 300
    for t in tuples:
        assert valence_bin(t["label"]) == valence_bin(t["voice"]["valence"]) == valence_bin(t["face"]["valence"])
        assert t["face"]["id"] != "lost"  # a face the detector missed is never used
    assert 0.35 < np.mean([t["source"] == "sst" for t in tuples]) < 0.65
    assert all(t["agree"] and t["label"] == pytest.approx(t["text_label"], abs=1.0) for t in tuples)


def test_disagreeing_tuples_keep_each_modality_valence_and_follow_the_words_first_rule():
    rng = np.random.default_rng(1)
    texts = [("mosi", f"m{i}", y) for i, y in enumerate(np.linspace(-3, 3, 41))] + [("sst", "s", 0.0)]
    voices = [{"id": f"v{i}", "valence": v} for i, v in enumerate((-2.5, -1.2, 0.0, 1.0, 2.5))]
    faces = [{"id": f"f{i}", "valence": v, "face_found": True} for i, v in enumerate((-2.0, -1.2, 0.0, 1.0, 2.0))]
    tuples = match_tuples(texts, voices, faces, 400, sst_share=0.5, rng=rng, disagree_share=0.4)
    disagreeing = [t for t in tuples if not t["agree"]]
    # Each of voice and face leaves the text's bin 40 % x 4/5 of the time: about 1 - 0.68^2 = 54 % of tuples.
    assert 0.4 < len(disagreeing) / len(tuples) < 0.7
    for t in tuples:
        words = abs(t["text_label"]) >= 1.5
        nonverbal = (t["voice"]["valence"] + t["face"]["valence"]) / 2
        if words:  # clear words decide
            assert t["label"] == pytest.approx(t["text_label"])
        elif t["text_label"] == 0.0:  # neutral words: the voice and the face do
            assert t["label"] == pytest.approx(nonverbal / 2)


def test_face_clip_frames_the_face_with_jitter():
    face = (np.arange(48 * 48) % 255).astype(np.uint8).reshape(48, 48)
    clip = face_clip(face, scale=3, frames=4, rng=np.random.default_rng(0))
    assert len(clip) == 4
    assert all(f.shape == (288, 288, 3) and f.dtype == np.uint8 for f in clip)
    assert not np.array_equal(clip[0], clip[1])  # jittered, not four copies


# --------------------------------------------------------------------------- the shipped folder


def test_shipped_folder_is_complete_verified_and_small():
    from export.artifacts import verify_folder

    from export.artifacts import default_variant

    manifest = verify_folder(SHIPPED)  # every file present and unaltered
    graph = manifest["variants"][default_variant(manifest)]
    assert {graph, "config.json", "feature_spec.json", "metrics.json", "MODEL_CARD.md"} <= set(manifest["files"])
    parity = manifest["parity"]["max_abs_diff"]
    assert max(v for k, v in parity.items() if not k.startswith("ba_") and not k.endswith("_percentile")) <= 1e-4
    assert max(v for k, v in parity.items() if k.endswith("_percentile")) <= manifest["parity"]["percentile_tolerance"]
    total = sum(p.stat().st_size for p in (REPO / "weights").rglob("*") if p.is_file())
    assert total <= 150 * 10**6, f"weights/ holds {total / 1e6:.1f} MB"
    card = (SHIPPED / "MODEL_CARD.md").read_text()
    assert "CC BY-NC-SA 4.0" in card and "not trained on aligned multimodal recordings" in card


def test_the_model_card_is_generated_from_the_folders_own_metrics():
    """No figure in the card is typed by hand: regenerating it from metrics.json, the config and
    the feature spec gives the shipped card exactly."""
    import json

    from export.ship.card import model_card

    report = json.loads((SHIPPED / "metrics.json").read_text())
    assert model_card(report, SHIPPED) == (SHIPPED / "MODEL_CARD.md").read_text()
    assert f"| text alone, MOSI standard test fold | {report['unimodal']['text_mosi_test']['n']} |" in model_card(report, SHIPPED)


def test_shipped_model_reads_words_the_right_way(shipped):
    good = shipped(asr=False).predict(text="this was a wonderful, moving film and I loved every minute of it")
    bad = shipped(asr=False).predict(text="a boring, stupid mess; I hated it and want my money back")
    assert good["score"] > 0.5 and bad["score"] < -0.5
    assert good["diagnostics"]["audio"]["shapley"] == "absent"


@pytest.mark.slow  # the shipped model
def test_shipped_text_reader_meets_its_targets_through_onnx_runtime():
    """Text alone through the graph that ships: MOSI's standard test fold at MAE <= 0.68, and
    SST's test split better than the MiniLM model before it (MAE 0.893, Corr 0.699)."""
    from export.runtime import OnnxModel
    from export.ship.corpora import text_corpus
    from export.ship.evaluate import unimodal_metrics
    from export.samples import clip_sample
    from tests.conftest import DATA

    runtime = OnnxModel(SHIPPED, providers=["CPUExecutionProvider"], threads=1)
    test = text_corpus(DATA)["test"]
    mosi = unimodal_metrics(runtime, [clip_sample(t, y) for source, t, y in test if source == "mosi"])
    sst = unimodal_metrics(runtime, [clip_sample(t, y) for source, t, y in test if source == "sst"])
    assert mosi["n"] == 686 and mosi["mae"] <= 0.68
    assert sst["mae"] < 0.893 and sst["corr"] > 0.699


def test_a_held_out_slice_of_plain_speech_scores_near_neutral_from_the_voice_alone(shipped):
    """Real read English from test-split speakers (never trained on), through the app's whole
    path with no words: the voice should not lean either way."""
    import csv

    from tests.conftest import DATA

    folder = DATA / "speech" / "english"
    rows = [r for r in csv.DictReader(open(folder / "metadata.csv", newline="", encoding="utf-8")) if r["split"] == "test"]
    rows = rows[:: max(1, len(rows) // 12)][:12]
    scores = [shipped(asr=False).predict(audio=folder / r["file"])["score"] for r in rows]
    assert abs(np.mean(scores)) <= 0.3 and np.mean(np.abs(scores)) <= 0.6, scores


def test_shipped_model_reads_voices_the_right_way(shipped):
    """Held-out RAVDESS actors (22-24), happy vs angry, the voice alone: the file goes
    through the app's whole path (decode, Whisper encoder, ONNX), with no words."""
    import csv

    from tests.conftest import DATA

    rows = [r for r in csv.DictReader(open(DATA / "ravdess" / "metadata.csv", newline="")) if int(r["actor"]) >= 22]
    scores = {}
    for emotion in ("happy", "angry"):
        files = [r["file"] for r in rows if r["emotion"] == emotion and r["intensity"] == "strong"]
        results = [shipped(asr=False).predict(audio=DATA / "ravdess" / f) for f in files]
        assert all(r["text_source"] == "absent" and r["diagnostics"]["audio"]["present"] for r in results)
        scores[emotion] = np.mean([r["score"] for r in results])
    assert scores["happy"] - scores["angry"] > 0.5, scores


def test_positive_words_with_a_negative_voice_and_face_score_lower(shipped):
    from model.data import Sample
    from model.features import FrontEnd
    from model.features.fer import EXPRESSIONS, load_fer
    from tests.conftest import DATA

    frontend, fer, rng = FrontEnd(), load_fer(DATA / "faces"), np.random.default_rng(0)

    def face(expression):
        for i in np.flatnonzero((fer["split"] == "test") & (fer["y"] == EXPRESSIONS.index(expression))):
            visual = frontend.visual_features(face_clip(fer["x"][i], 3, 4, rng))[0]
            if len(visual):
                return visual

    def voice(name):
        import soundfile as sf

        return frontend.audio_features(*sf.read(DATA / "ravdess/audio" / name, dtype="float32"))[0]

    words = "the film was nice and the ending was good"
    happy = Sample("", words, 0.0, {"audio": voice("Actor_23/03-01-03-02-01-01-23.flac"), "visual": face("happy")})
    angry = Sample("", words, 0.0, {"audio": voice("Actor_23/03-01-05-02-01-01-23.flac"), "visual": face("angry")})
    run = lambda s: float(shipped(asr=False).model.run(shipped(asr=False).model.collate([s]))["score"][0])
    assert run(angry) < run(happy) - 0.3


def test_shipped_model_reads_faces_the_right_way(shipped):
    """Held-out real faces (FER PrivateTest) through the app's visual path, face alone."""
    from model.features import FrontEnd
    from model.features.fer import EXPRESSIONS, load_fer
    from tests.conftest import DATA

    frontend, fer, rng = FrontEnd(), load_fer(DATA / "faces"), np.random.default_rng(0)
    scores = {}
    for expression in ("happy", "angry"):
        index = np.flatnonzero((fer["split"] == "test") & (fer["y"] == EXPRESSIONS.index(expression)))[:40]
        feats = [frontend.visual_features(face_clip(fer["x"][i], 3, 4, rng))[0] for i in index]
        clips = [shipped(asr=False).model.collate([_face_sample(f)]) for f in feats if len(f)]
        assert len(clips) >= 15  # the detector finds most of them
        scores[expression] = np.mean([shipped(asr=False).model.run(c)["score"][0] for c in clips])
    assert scores["happy"] > 0 > scores["angry"]


def _face_sample(visual):
    from model.data import Sample
    from model.features import AUDIO_DIM

    return Sample("face", "", 0.0, {"audio": np.zeros((0, AUDIO_DIM), np.float32), "visual": visual})


@pytest.mark.slow  # builds a small clip model three times
def test_kill_9_part_way_then_a_rerun_equals_an_uninterrupted_build(tmp_path, tiny_bert):
    """`python -m export.ship` killed during training, then run again: it resumes from its cached
    corpora, tuples and training state, and ships the same model with the same figures; and
    `--evaluate-only` on the folder measures those figures again."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    small = ["--tuples-train", "32", "--tuples-valid", "8", "--tuples-test", "8", "--voices-per-split", "8",
             "--faces-train", "7", "--faces-valid", "7", "--faces-test", "7", "--epochs", "3", "--patience", "5",
             "--num-threads", "1", "--text-encoder", tiny_bert, "--text-reader-epochs", "1", "--text-reader-limit", "64",
             "--text-reader-frozen-layers", "1"]

    def command(name):
        return [sys.executable, "-m", "export.ship", "--work-dir", str(tmp_path / name / "work"),
                "--out", str(tmp_path / name / "model"), *small]

    quiet = dict(cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(command("clean"), check=True, **quiet)
    proc = subprocess.Popen(command("killed"), **quiet)
    resume = tmp_path / "killed" / "work" / "run" / "resume.json"
    deadline = time.monotonic() + 600
    while proc.poll() is None and not resume.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the build finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "model").exists()
    subprocess.run(command("killed"), check=True, **quiet)

    def shipped(name):
        folder = tmp_path / name / "model"
        metrics = json.loads((folder / "metrics.json").read_text())
        for volatile in ("recipe", "train_config"):  # where each build ran
            metrics.pop(volatile)
        metrics["training"].pop("epoch_seconds")
        for epoch in metrics["text_reader"]["history"]:
            epoch.pop("seconds")
        for variant in metrics["variants"].values():
            variant.pop("ms_per_sentence_batch1_1thread")
        manifest = json.loads((folder / "manifest.json").read_text())
        return metrics, {name: manifest["files"][name] for name in manifest["variants"].values()}

    assert shipped("killed") == shipped("clean")

    # --evaluate-only measures the folder again by its own recipe (the cached corpora): the same figures.
    folder = tmp_path / "clean" / "model"
    built = json.loads((folder / "metrics.json").read_text())
    subprocess.run([sys.executable, "-m", "export.ship", "--evaluate-only", "--work-dir", str(tmp_path / "clean" / "work"),
                    "--out", str(folder)], check=True, **quiet)
    again = json.loads((folder / "metrics.json").read_text())
    assert again.pop("reevaluated")["command"] == f"python -m export.ship --evaluate-only --out {folder}"
    assert again == built


def test_neutral_faces_are_held_out_fer_neutral_faces_scored_by_the_face_alone():
    """The build's neutral-face row: neutral FER faces of the valid and test splits only, each a
    face-only sample, and the figures are those of the scores the model gave."""
    from model.features import VISUAL_DIM
    from export.ship.evaluate import neutral_face_metrics
    from tests.conftest import DATA

    class Recorder:
        def __init__(self):
            self.calls = []

        def predict(self, samples):
            self.calls.append(samples)
            return {"score": np.linspace(-1.0, 0.2, len(samples))}

    runtime = Recorder()
    out = neutral_face_metrics(runtime, DATA, (3, 2), per_split=4)
    assert set(out) == {"valid", "test"} and len(runtime.calls) == 2
    for split, samples in zip(("valid", "test"), runtime.calls):
        assert out[split]["faces"] == 4 and out[split]["n"] == len(samples) >= 3  # faces the detector found
        assert all(s.text == "" and len(s.features["audio"]) == 0 and s.features["visual"].shape[1] == VISUAL_DIM
                   for s in samples)
        scores = np.linspace(-1.0, 0.2, len(samples))
        assert out[split]["mean"] == pytest.approx(scores.mean())
        assert out[split]["mean_abs"] == pytest.approx(np.abs(scores).mean())
        assert out[split]["below_minus_half"] == pytest.approx((scores < -0.5).mean())


def test_voice_familiarity_groups_by_either_percentile_and_compares_with_the_voice_left_out():
    from export.ship.reliability import voice_share_by_familiarity

    outputs = {
        "score": np.array([1.0, 0.0, -1.0, 2.0]),
        "shapley_text": np.array([1.0, 1.0, 3.0, 1.0]),
        "shapley_audio": np.array([1.0, -1.0, 1.0, 0.0]),
        "shapley_visual": np.array([0.0, 0.0, 0.0, 1.0]),
        "ba_text_audio_percentile": np.array([0.5, 50.0, 50.0, 50.0]),  # the first voice: BA is unusual
        "cpc_audio_percentile": np.array([50.0, 0.2, 50.0, 50.0]),      # the second: CPC is
    }
    labels = np.array([1.0, 1.0, -1.0, 1.0])
    without_voice = np.array([0.0, 1.0, -1.0, 1.5])
    out = voice_share_by_familiarity(outputs, without_voice, labels, below=1.0)
    assert out["outside"]["n"] == 2 and out["inside"]["n"] == 2
    assert out["outside"]["voice_share"] == pytest.approx(0.5)          # 1/2 and 1/2
    assert out["inside"]["voice_share"] == pytest.approx((0.25 + 0.0) / 2)
    assert out["outside"]["mae_with_voice"] == pytest.approx(0.5)       # |1-1|, |0-1|
    assert out["outside"]["mae_without_voice"] == pytest.approx(0.5)    # |0-1|, |1-1|
    assert out["inside"]["mae_with_voice"] == pytest.approx(0.5) and out["inside"]["mae_without_voice"] == pytest.approx(0.25)


class _LinearFusion:
    """A stand-in for the exported model, with known answers: with words t, the score is
    t + k * a for a voice a (a alone scores a); the voice's BA percentile is 0.5 (outside
    training) when a > 5, else 50."""

    def __init__(self, k: float):
        self.k = k

    def predict(self, samples):
        t = np.array([float(s.text) if s.text else np.nan for s in samples])
        a = np.array([s.features["audio"][0, 0] if len(s.features["audio"]) else np.nan for s in samples])
        words, voice = ~np.isnan(t), ~np.isnan(a)
        text_part, voice_part = np.where(words, t, 0.0), np.where(voice, a, 0.0)
        voice_part = np.where(words, self.k * voice_part, voice_part)
        return {"score": text_part + voice_part, "shapley_text": text_part, "shapley_audio": voice_part,
                "shapley_visual": np.zeros(len(samples)),
                "ba_text_audio_percentile": np.where(voice & (voice_part > 5 * np.where(words, self.k, 1.0)), 0.5, 50.0),
                "cpc_audio_percentile": np.full(len(samples), 50.0)}


def test_swapped_voices_measure_the_known_pass_through_and_the_diagnostics_verdict():
    from export.ship.reliability import scores_without_voice, unusual_voice_metrics

    tuples = [{"text": str(t), "label": 0.0, "face": {"features": np.zeros((0, 8), np.float32)}} for t in (1.0, -2.0, 3.0, 0.5)]
    voice = lambda v: np.full((3, 4), v, np.float32)  # noqa: E731
    pools = {"quiet": [voice(1.0), voice(-1.0)], "loud": [voice(10.0)], "none found": [voice(2.0), np.zeros((0, 4), np.float32)]}
    model = _LinearFusion(k=0.25)
    out = unusual_voice_metrics(model, tuples, pools, scores_without_voice(model, tuples))
    for m in out.values():
        assert m["pass_through"] == pytest.approx(0.25)  # the effect is k times what the voice scores alone
    assert out["loud"]["mean_abs_effect"] == pytest.approx(2.5) and out["loud"]["voice_alone_mean"] == pytest.approx(10.0)
    assert out["loud"]["outside_share"] == 1.0 and out["quiet"]["outside_share"] == 0.0
    assert out["quiet"]["voice_share_outside"] is None and out["loud"]["voice_share_inside"] is None
    # Shares: |0.25 a| / (|t| + |0.25 a|) over the tuples, with a = 10 for every tuple.
    assert out["loud"]["voice_share"] == pytest.approx(np.mean([2.5 / (abs(t) + 2.5) for t in (1.0, 2.0, 3.0, 0.5)]))
    assert out["none found"]["voices"] == 1 and out["none found"]["voice_alone_mean_abs"] == pytest.approx(2.0)


def test_neutral_voices_keep_their_speakers_split_and_play_ravdess_backwards(tmp_path):
    import csv

    import soundfile

    from export.ship.corpora import BACKWARDS_EVERY, neutral_voice_corpus
    from model.features.frontend import mono_16k
    from tests.conftest import DATA

    class Recorder:
        """A front end that keeps what it hears and gives one feature row per second."""
        def __init__(self):
            self.heard = []

        def audio_features(self, signal, rate=16000):
            self.heard.append(signal)
            return np.ones((len(signal) // rate, 4), np.float32), {"voiced_share": 1.0}

    rows = list(csv.DictReader(open(DATA / "ravdess" / "metadata.csv", newline="")))
    clean = {s: [{"file": r["file"], "split": s} for r in rows if r["split"] == s][: 2 * BACKWARDS_EVERY]
             for s in ("train", "valid", "test")}
    heard = Recorder()
    backwards = neutral_voice_corpus("backwards", DATA, heard, tmp_path / "b.npz", clean)
    assert {s: len(v) for s, v in backwards.items()} == {"train": 2, "valid": 2, "test": 2}
    first = mono_16k(*soundfile.read(DATA / "ravdess" / clean["train"][0]["file"], dtype="float32"))
    np.testing.assert_array_equal(heard.heard[0], first[::-1])
    assert all(v["valence"] == 0.0 and v["voice_found"] for pool in backwards.values() for v in pool)

    foreign = neutral_voice_corpus("other_languages", DATA, Recorder(), tmp_path / "f.npz", clean, per_split=1)
    meta = {r["file"]: r["split"] for r in csv.DictReader(open(DATA / "speech" / "foreign" / "metadata.csv", newline=""))}
    assert all(len(v) == 1 and v[0]["split"] == s == meta[v[0]["file"]] for s, v in foreign.items())
    with pytest.raises(ValueError, match="unknown neutral voices"):
        neutral_voice_corpus("music", DATA, Recorder(), tmp_path / "m.npz", clean)


def test_swapped_voices_count_how_often_trust_weighed_the_voice_down():
    from export.ship.reliability import scores_without_voice, unusual_voice_metrics

    class Trusting(_LinearFusion):  # serves a voice above 5 at trust 0: its effect is gone
        def predict(self, samples):
            out = super().predict(samples)
            a = np.array([s.features["audio"][0, 0] if len(s.features["audio"]) else 0.0 for s in samples])
            trust = np.where(a > 5, 0.0, 1.0)
            return {**out, "fused_score": out["score"], "score": out["score"] - (1 - trust) * out["shapley_audio"],
                    "trust_audio": trust}

    tuples = [{"text": str(t), "label": 0.0, "face": {"features": np.zeros((0, 8), np.float32)}} for t in (1.0, -2.0)]
    voice = lambda v: np.full((3, 4), v, np.float32)  # noqa: E731
    model = Trusting(k=0.5)
    out = unusual_voice_metrics(model, tuples, {"quiet": [voice(1.0)], "loud": [voice(10.0)]}, scores_without_voice(model, tuples))
    assert out["quiet"]["trusted_less_share"] == 0.0 and out["loud"]["trusted_less_share"] == 1.0
    assert out["loud"]["pass_through_fused"] == pytest.approx(0.5) and out["loud"]["pass_through"] == pytest.approx(0.0)
    assert out["quiet"]["pass_through"] == pytest.approx(0.5)
