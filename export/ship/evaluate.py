"""How the shipped clip model is measured: through ONNX Runtime, on held-out data only."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from model.config import MODALITIES
from model.data import Sample
from model.features import FrontEnd, FrontEndConfig
from model.metrics import sentiment_metrics

from ..artifacts import MANIFEST
from ..runtime import OnnxModel
from ..samples import clip_sample
from .reliability import scores, scores_without_voice, unusual_voice_metrics, unusual_voice_pools, voice_share_by_familiarity

# int8 or fp16 ships only if text alone loses at most this much MAE against fp32.
VARIANT_MAE_TOLERANCE = 0.01


def polarity_accuracy(pred: np.ndarray, target: np.ndarray) -> float:
    keep = target != 0
    return float(((pred[keep] > 0) == (target[keep] > 0)).mean())


def unimodal_metrics(runtime, samples: list[Sample]) -> dict[str, float]:
    pred = runtime.predict(samples)["score"]
    target = np.array([s.label for s in samples])
    m = sentiment_metrics(pred, target)
    return {"n": len(samples), "mae": m["mae"], "corr": m["corr"], "polarity_acc": polarity_accuracy(pred, target)}


def evaluate_shipped(model_dir: Path, texts, voices, faces, test_tuples, rng, data_root: Path,
                     voice_sources: dict[str, dict[str, list[dict]]], face_clip_shape: tuple[int, int],
                     per_split: int = 0, threads: int = 0) -> dict:
    """Through ONNX Runtime, on held-out data only:
    - each modality alone, on its corpus's held-out split; the voice also on RAVDESS under
      real recording conditions, and on real plain speech (where it should stay near 0); the
      face also on every neutral FER2013 face of the held-out splits (likewise);
    - the transcript gate on held-out real English and non-English speech;
    - the test tuples, all of them and split into agreeing and disagreeing ones;
    - face + voice with no text, against the tuple's non-verbal valence;
    - each modality's mean |Shapley value| on the test tuples, beside its reliability;
    - whether the fusion leans less on unusual voices (reliability.py);
    - held-out RAVDESS clips through the app's whole path (file -> front end -> ONNX);
    - the MI diagnostics on agreeing vs disagreeing versions of the same tuples."""
    runtime = OnnxModel(model_dir, providers=["CPUExecutionProvider"], threads=threads)
    report = {"unimodal": {
        "text_mosi_test": unimodal_metrics(runtime, [clip_sample(t, y) for src, t, y in texts["test"] if src == "mosi"]),
        "text_sst_test": unimodal_metrics(runtime, [clip_sample(t, y) for src, t, y in texts["test"] if src == "sst"]),
        "audio_ravdess_test": unimodal_metrics(runtime, [clip_sample(label=v["valence"], audio=v["features"])
                                                         for v in voice_sources["clean"]["test"] if v["voice_found"]]),
        "visual_fer_test": unimodal_metrics(runtime, [clip_sample(label=f["valence"], visual=f["features"])
                                                      for f in faces["test"] if f["face_found"]]),
        "audio_ravdess_conditioned_test": unimodal_metrics(runtime, [
            clip_sample(label=v["valence"], audio=v["features"]) for v in voice_sources["conditioned"]["test"] if v["voice_found"]]),
    }}
    report["plain_speech_voice_alone"] = {
        split: neutral_metrics(runtime, [clip_sample(audio=v["features"]) for v in voice_sources["plain"][split] if v["voice_found"]])
        for split in ("valid", "test")}
    report["neutral_face_alone"] = neutral_face_metrics(runtime, data_root, face_clip_shape, per_split)
    report["transcript_gate_test"] = gate_metrics(data_root, per_split)
    without_voice = scores_without_voice(runtime, test_tuples)
    report.update(tuple_metrics(runtime, test_tuples, without_voice))
    ordinary = {"RAVDESS test": [v["features"] for v in voice_sources["clean"]["test"]],
                "RAVDESS test, training conditions": [v["features"] for v in voice_sources["conditioned"]["test"]],
                "plain English, test speakers": [v["features"] for v in voice_sources["plain"]["test"]]}
    unusual = unusual_voice_pools(FrontEnd(), data_root, voice_sources["clean"]["test"], per_split)
    report["swapped_voices"] = unusual_voice_metrics(runtime, test_tuples, {**ordinary, **unusual}, without_voice)
    report["clip_path_ravdess_test"] = clip_path_metrics(runtime, data_root, voice_sources["clean"]["test"])
    report["mi_agree_vs_disagree"] = mi_agree_vs_disagree(runtime, test_tuples, voices["test"], faces["test"], rng)
    return report


def neutral_metrics(runtime, samples: list[Sample]) -> dict:
    """One modality alone on clips whose valence is about 0 (plain speech, neutral faces): the
    mean says whether it leans, the mean |score| how far it strays."""
    scores = runtime.predict(samples)["score"]
    return {"n": len(scores), "mean": float(scores.mean()), "mean_abs": float(np.abs(scores).mean()),
            "below_minus_half": float((scores < -0.5).mean()), "above_half": float((scores > 0.5).mean())}


def neutral_face_metrics(runtime, data_root: Path, face_clip_shape: tuple[int, int], per_split: int = 0) -> dict:
    """The face alone on the neutral FER2013 faces of the valid and test splits (per_split > 0:
    that many of each, evenly spaced), made into clips as the build's faces are
    (face_clip_shape: its (scale, frames)), faces found only."""
    from model.data.samples import spread
    from model.features.fer import EXPRESSIONS, load_fer

    from .corpora import face_clip

    fer, frontend, rng = load_fer(data_root / "faces"), FrontEnd(), np.random.default_rng(0)
    out = {}
    for split in ("valid", "test"):
        faces = np.flatnonzero((fer["split"] == split) & (fer["blank"] == 0) & (fer["y"] == EXPRESSIONS.index("neutral")))
        faces = spread(list(faces), per_split) if per_split else faces
        feats = [frontend.visual_features(face_clip(fer["x"][i], *face_clip_shape, rng))[0]
                 for i in faces]
        out[split] = neutral_metrics(runtime, [clip_sample(visual=x) for x in feats if len(x)])
        out[split]["faces"] = len(faces)
    return out


def gate_metrics(data_root: Path, per_split: int = 0) -> dict:
    """The transcript gate (front end defaults) on the test speakers of shared/data/speech:
    the share of English clips whose words are kept, and of other languages' that are scored."""
    from model.features.bench.language_gate import measure, rates, real_clips
    from model.features.transcript_gate import GateConfig

    rows = measure(clips=real_clips(data_root, split="test", per_folder=per_split))
    return rates(rows, GateConfig())["test"]


def compare_variants(model_dir: Path, texts, variants: tuple[str, ...], latency_sentences: int = 100,
                     threads: int = 0) -> dict:
    """Every graph built, on text alone (MOSI and SST test, where the words are all there is),
    and its latency per sentence at batch 1 on one thread. A reduced graph ships only within
    VARIANT_MAE_TOLERANCE of fp32 on both; otherwise this raises."""
    samples = {c: [clip_sample(t, y) for src, t, y in texts["test"] if src == c] for c in ("mosi", "sst")}
    out = {}
    for variant in json.loads((Path(model_dir) / MANIFEST).read_text())["variants"]:
        runtime = OnnxModel(model_dir, variant, providers=["CPUExecutionProvider"], threads=threads)
        out[variant] = {f"text_{c}_test_mae": unimodal_metrics(runtime, s)["mae"] for c, s in samples.items()}
        runtime = OnnxModel(model_dir, variant, providers=["CPUExecutionProvider"], threads=1)
        times = []
        for sample in samples["mosi"][:latency_sentences]:
            feed = runtime.collate([sample])
            start = time.perf_counter()
            runtime.run(feed)
            times.append(time.perf_counter() - start)
        out[variant]["ms_per_sentence_batch1_1thread"] = 1000 * float(np.median(times))
        out[variant]["bytes"] = (Path(model_dir) / runtime.manifest["variants"][variant]).stat().st_size
    for variant in variants:
        if variant != "fp32":
            worse = {k: out[variant][k] - out["fp32"][k] for k in out["fp32"] if k.endswith("_mae")}
            if max(worse.values()) > VARIANT_MAE_TOLERANCE:
                raise ValueError(f"the {variant} graph loses {worse} MAE against fp32, over {VARIANT_MAE_TOLERANCE}")
    return out


def tuple_metrics(runtime, test_tuples: list[dict], without_voice: dict[str, np.ndarray]) -> dict:
    """The test tuples against their words-first targets (all, agreeing, disagreeing), face +
    voice without the words, and each modality's mean |Shapley value| (without_voice: the
    tuples' scores from their words and face alone)."""
    tuples = [clip_sample(t["text"], t["label"], t["voice"]["features"], t["face"]["features"]) for t in test_tuples]
    agree = np.array([t["agree"] for t in test_tuples])
    outputs = runtime.predict(tuples)
    labels = np.array([s.label for s in tuples])
    nonverbal = [clip_sample("", (t["voice"]["valence"] + t["face"]["valence"]) / 2, t["voice"]["features"], t["face"]["features"])
                 for t in test_tuples]
    return {
        "tuples_test": sentiment_metrics(outputs["score"], labels),
        # The fusion network's own scores, before trust weighed the voice and the face (export/trust.py).
        "tuples_test_fused": sentiment_metrics(scores(outputs)["fused_score"], labels),
        "tuples_test_agreeing": {"n": int(agree.sum()), **sentiment_metrics(outputs["score"][agree], labels[agree])},
        "tuples_test_disagreeing": {"n": int((~agree).sum()), **sentiment_metrics(outputs["score"][~agree], labels[~agree])},
        "face_voice_no_text": unimodal_metrics(runtime, nonverbal),
        "mean_abs_shapley": {m: float(np.abs(outputs[f"shapley_{m}"]).mean()) for m in MODALITIES},
        "mean_abs_shapley_disagreeing": {m: float(np.abs(outputs[f"shapley_{m}"][~agree]).mean()) for m in MODALITIES},
        "voice_share_by_familiarity": voice_share_by_familiarity(outputs, without_voice["score"], labels),
    }


def mi_agree_vs_disagree(runtime, test_tuples: list[dict], voices: list[dict], faces: list[dict], rng) -> dict:
    """Every diagnostic on agreeing tuples with clearly polar words, and on the same tuples with
    a voice and a face of the opposite polarity (strong bins only, so "opposite" is unambiguous)."""
    def candidates(pool, label):
        return [p for p in pool if p.get("face_found", True) and p.get("voice_found", True)
                and np.sign(p["valence"]) == -np.sign(label) and abs(p["valence"]) >= 1.0]

    def opposite(pool, label):
        want = candidates(pool, label)
        return want[rng.integers(len(want))]["features"]

    # Tuples whose opposite exists in both pools (all of them, but in a small smoke build).
    polar = [t for t in test_tuples if t["agree"] and abs(t["text_label"]) >= 1.0
             and candidates(voices, t["text_label"]) and candidates(faces, t["text_label"])]
    if len(polar) < 2:
        return {"n_pairs": len(polar)}
    agreeing = [clip_sample(t["text"], t["text_label"], t["voice"]["features"], t["face"]["features"]) for t in polar]
    clashing = [clip_sample(s.text, s.label, opposite(voices, s.label), opposite(faces, s.label)) for s in agreeing]
    o_agree, o_clash = runtime.predict(agreeing), runtime.predict(clashing)
    diagnostics = {}
    for name in runtime.output_names:
        if name == "score" or name.endswith("_percentile"):
            continue
        diff = o_agree[name] - o_clash[name]
        diagnostics[name] = {
            "agree_mean": float(o_agree[name].mean()), "disagree_mean": float(o_clash[name].mean()),
            "paired_diff_mean": float(diff.mean()), "paired_diff_se": float(diff.std(ddof=1) / np.sqrt(len(diff))),
            "agree_higher_share": float((diff > 0).mean()),
        }
    return {"n_pairs": len(polar), **diagnostics}


def clip_path_metrics(runtime, data_root: Path, voices: list[dict]) -> dict:
    """Held-out RAVDESS files through the app's whole path (decode -> front end -> ONNX): the
    voice alone (no speech recognition), and with the words Whisper hears (the neutral
    sentences RAVDESS uses)."""
    out = {}
    for name, asr in (("voice_alone", False), ("voice_with_asr_text", True)):
        frontend = FrontEnd(FrontEndConfig(asr=asr))
        clips = [frontend.extract(audio=data_root / "ravdess" / v["file"]) for v in voices]
        pred = runtime.predict([c.to_sample() for c in clips])["score"]
        target = np.array([v["valence"] for v in voices])
        m = sentiment_metrics(pred, target)
        out[name] = {"n": len(clips), "mae": m["mae"], "corr": m["corr"], "polarity_acc": polarity_accuracy(pred, target),
                     "with_text": int(sum(c.text_source == "automatic" for c in clips))}
    return out
