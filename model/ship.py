"""Build the shipped clip model (weights/mmim-clip) from the real data in shared/data.

    python -m model.ship --out weights/mmim-clip

No aligned text + audio + video sentiment corpus can be had here, so the model
is built from real unimodal recordings, each run through the app's own front end:
- text:   MOSI transcripts (standard folds) and SST sentences, with their labels;
- audio:  RAVDESS speech (speaker-independent actor splits), valence from emotion
          and intensity (VOICE_VALENCE);
- visual: FER2013 faces, each made into a short clip of jittered frames, valence
          from the expression (FACE_VALENCE).
Tuples pair a text with a voice and a face from the same split. Most share the
text's valence bin (polarity and strength); in `disagree_share` of them the voice,
and independently the face, come from a random bin instead, so that the fusion
sees modalities that disagree. Each modality keeps its own valence, and the target
is the words-first mix of the modalities the model sees (model/targets.py). MMIM
trains on them as on any featurized dataset, with unimodal heads and modality
dropout, and is exported and evaluated through ONNX Runtime.

Every step caches its output under --work-dir, so a rerun after a crash resumes.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .cli import add_dataclass_flags, dataclass_from_args
from .config import ModelConfig, TrainConfig
from .data import Sample, load_mosi
from .metrics import sentiment_metrics

log = logging.getLogger("mmim.ship")

# Valence in [-3, 3] per RAVDESS emotion (normal intensity); strong intensity x1.25.
VOICE_VALENCE = {
    "neutral": 0.0, "calm": 0.5, "happy": 2.0, "surprised": 1.0,
    "sad": -1.2, "fearful": -1.2, "disgust": -1.8, "angry": -2.0,
}
STRONG = 1.25
# Valence per FER2013 expression.
FACE_VALENCE = {
    "neutral": 0.0, "happy": 2.0, "surprise": 1.0,
    "sad": -1.5, "fear": -1.2, "disgust": -1.8, "angry": -2.0,
}
# Valence bins that tuples are matched on: polarity and strength.
BIN_EDGES = (-1.5, -0.5, 0.5, 1.5)
SPLITS = ("train", "valid", "test")


def valence_bin(value: float) -> int:
    """0 strongly negative .. 2 neutral .. 4 strongly positive."""
    return int(np.searchsorted(BIN_EDGES, value, side="left"))


@dataclass
class ShipConfig:
    data_root: str = "../shared/data"
    work_dir: str = "runs/ship"
    out: str = "weights/mmim-clip"
    seed: int = 0
    # Matched tuples per split.
    tuples_train: int = 2400
    tuples_valid: int = 400
    tuples_test: int = 1200
    # FER faces per split that are turned into clips (balanced over expressions).
    faces_train: int = 2100
    faces_valid: int = 350
    faces_test: int = 700
    face_frames: int = 4  # frames per face clip (5 fps: 0.8 s)
    face_scale: int = 3  # FER's 48 px faces are upscaled and framed: Haar needs context
    # Share of tuples whose text is an SST sentence (the rest are MOSI transcripts).
    sst_share: float = 0.5
    # Chance that the voice (and, independently, the face) of a tuple comes from a random
    # valence bin instead of the text's: the disagreeing tuples.
    disagree_share: float = 0.4
    # MMIM training on the tuples (everything else as in TrainConfig).
    epochs: int = 16
    patience: int = 4
    modality_dropout: float = 0.4
    unimodal_weight: float = 0.5
    target_rule: str = "words_first"
    # The voice encoder also projects the mean of the Whisper frames (model/encoders.py).
    mean_pool: tuple[str, ...] = ("audio",)
    num_threads: int = 0
    # Re-evaluate the folder at --out (metrics.json, MODEL_CARD.md) without retraining.
    evaluate_only: bool = False


# --------------------------------------------------------------------------- corpora


def text_corpus(data_root: Path) -> dict[str, list[tuple[str, str, float]]]:
    """(source, text, label) per split: MOSI standard folds and SST sentences."""
    out = {s: [] for s in SPLITS}
    for split, samples in load_mosi(data_root / "mosi", "mosi-std").items():
        out[split] += [("mosi", s.text, s.label) for s in samples]
    with open(data_root / "text" / "sst.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out[row["split"]].append(("sst", row["text"], float(row["label_pm3"])))
    return out


def voice_corpus(data_root: Path, frontend, cache: Path) -> dict[str, list[dict]]:
    """RAVDESS speech through the front end's audio path: features and valence per split."""
    import soundfile

    if not cache.is_file():
        rows = list(csv.DictReader(open(data_root / "ravdess" / "metadata.csv", newline="")))
        feats, meta = [], []
        for row in tqdm(rows, desc="RAVDESS audio"):
            signal, rate = soundfile.read(data_root / "ravdess" / row["file"], dtype="float32")
            x, quality = frontend.audio_features(signal, rate)
            valence = VOICE_VALENCE[row["emotion"]] * (STRONG if row["intensity"] == "strong" else 1.0)
            feats.append(x)
            meta.append({"id": Path(row["file"]).stem, "file": row["file"], "split": row["split"],
                         "emotion": row["emotion"], "valence": valence, "voice_found": bool(len(x)),
                         "voiced_share": quality.get("voiced_share", 0.0)})
        save_ragged(cache, feats, meta)
    return by_split(*load_ragged(cache))


def face_clip(face: np.ndarray, scale: int, frames: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A 48x48 grey face as a short RGB clip: upscaled, framed, jittered per frame
    (shift, brightness), so the visual path sees what a webcam would give it."""
    import cv2

    size = face.shape[0] * scale
    big = cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC)
    border = size // 2
    clip = []
    for _ in range(frames):
        dx, dy = rng.integers(-scale * 2, scale * 2 + 1, size=2)
        canvas = np.full((size + 2 * border, size + 2 * border), int(big.mean()), np.uint8)
        y0, x0 = border + dy, border + dx
        canvas[y0 : y0 + size, x0 : x0 + size] = big
        canvas = np.clip(canvas.astype(np.float32) * rng.uniform(0.85, 1.15), 0, 255).astype(np.uint8)
        clip.append(np.repeat(canvas[:, :, None], 3, axis=2))
    return clip


def face_corpus(cfg: ShipConfig, frontend, cache: Path) -> dict[str, list[dict]]:
    """FER2013 faces, as short clips through the front end's visual path.

    Faces in which the detector finds no face are dropped (and counted): in the
    app such a clip has no visual modality at all.
    """
    from .features.fer import EXPRESSIONS, load_fer

    if not cache.is_file():
        fer = load_fer(Path(cfg.data_root) / "faces")
        rng = np.random.default_rng(cfg.seed)
        per_split = {"train": cfg.faces_train, "valid": cfg.faces_valid, "test": cfg.faces_test}
        feats, meta = [], []
        for split, n in per_split.items():
            pool = np.flatnonzero((fer["split"] == split) & (fer["blank"] == 0))
            # Balanced over expressions as far as each class allows (disgust is rare).
            chosen = np.concatenate([
                rng.permutation(pool[fer["y"][pool] == k])[: n // len(EXPRESSIONS)] for k in range(len(EXPRESSIONS))
            ])
            for i in tqdm(chosen, desc=f"FER {split} faces"):
                x, quality = frontend.visual_features(face_clip(fer["x"][i], cfg.face_scale, cfg.face_frames, rng))
                expression = EXPRESSIONS[fer["y"][i]]
                feats.append(x)
                meta.append({"id": f"fer{i}", "split": split, "expression": expression,
                             "valence": FACE_VALENCE[expression], "face_found": bool(len(x))})
        save_ragged(cache, feats, meta)
    feats, meta = load_ragged(cache)
    return by_split(feats, meta)


def save_ragged(path: Path, arrays: list[np.ndarray], meta: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lengths = np.array([len(a) for a in arrays])
    dim = arrays[0].shape[1]
    stacked = np.concatenate(arrays) if lengths.sum() else np.zeros((0, dim), np.float32)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, frames=stacked, lengths=lengths, meta=np.array(json.dumps(meta)))
    tmp.replace(path)


def load_ragged(path: Path) -> tuple[list[np.ndarray], list[dict]]:
    with np.load(path) as z:
        # Each z[...] access reads the whole array again: read it once.
        frames, lengths, meta = z["frames"], z["lengths"], json.loads(str(z["meta"]))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return [frames[a:b] for a, b in zip(offsets[:-1], offsets[1:])], meta


def by_split(arrays: list[np.ndarray], meta: list[dict]) -> dict[str, list[dict]]:
    out = {s: [] for s in SPLITS}
    for x, m in zip(arrays, meta):
        out[m["split"]].append({**m, "features": x})
    return out


# --------------------------------------------------------------------------- tuples


def match_tuples(texts, voices, faces, n: int, sst_share: float, rng: np.random.Generator,
                 disagree_share: float = 0.0) -> list[dict]:
    """n (text, voice, face) tuples of one split.

    Texts are drawn first (from SST with probability sst_share). The voice comes from
    the text's valence bin, except with probability disagree_share, when its bin is
    drawn at random among those that have voices; the face likewise, independently.
    Each tuple keeps every modality's valence and its fused target (words_first over
    all three); bins with no voice or no face are skipped.
    """
    import torch

    from .targets import words_first

    bins = range(len(BIN_EDGES) + 1)
    voice_bins = {b: [v for v in voices if v.get("voice_found", True) and valence_bin(v["valence"]) == b] for b in bins}
    face_bins = {b: [f for f in faces if f["face_found"] and valence_bin(f["valence"]) == b] for b in bins}
    by_source = {src: [t for t in texts if t[0] == src] for src in ("mosi", "sst")}

    def draw(pool: dict, b: int):
        if rng.random() < disagree_share:
            b = int(rng.choice([k for k in bins if pool[k]]))
        return pool[b][rng.integers(len(pool[b]))] if pool[b] else None

    tuples = []
    while len(tuples) < n:
        source = "sst" if rng.random() < sst_share else "mosi"
        _, text, label = by_source[source][rng.integers(len(by_source[source]))]
        b = valence_bin(label)
        voice, face = draw(voice_bins, b), draw(face_bins, b)
        if voice is None or face is None:
            continue
        valences = torch.tensor([[label, voice["valence"], face["valence"]]])
        target = float(words_first(valences, torch.ones(1, 3, dtype=torch.bool), ("text", "audio", "visual"))[0])
        tuples.append({"text": text, "source": source, "label": target, "text_label": label, "voice": voice, "face": face,
                       "agree": valence_bin(voice["valence"]) == b == valence_bin(face["valence"])})
    return tuples


def write_dataset(out: Path, tuples: dict[str, list[dict]], spec: dict) -> None:
    """The tuples in the layout `model.featurize` writes, so training takes the same path."""
    from .features.dataset import (ERROR_COLUMNS, MODALITY_LABEL_COLUMNS, SAMPLE_COLUMNS, feature_path, load_featurized,
                                   normalisation, save_clip, write_csv)

    rows = []
    for split, items in tuples.items():
        for i, t in enumerate(items):
            row = {"video_id": f"{split}{i:05d}", "clip_id": f"{t['voice']['id']}+{t['face']['id']}", "text": t["text"],
                   "text_source": "given", "label": t["label"], "split": split, "file": "",
                   "label_text": t["text_label"], "label_audio": t["voice"]["valence"], "label_visual": t["face"]["valence"]}
            quality = {"voice": t["voice"]["id"], "face": t["face"]["id"], "text_corpus": t["source"]}
            save_clip(feature_path(out, row["video_id"], row["clip_id"]), t["voice"]["features"], t["face"]["features"],
                      t["text"], "given", quality)
            rows.append(row)
    (out / "feature_spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    write_csv(out / "errors.csv", ERROR_COLUMNS, [])
    # samples.csv last: its presence marks a complete dataset.
    write_csv(out / "samples.csv", SAMPLE_COLUMNS + MODALITY_LABEL_COLUMNS, rows)
    (out / "normalisation.json").write_text(json.dumps(normalisation(load_featurized(out)["train"])) + "\n")


# --------------------------------------------------------------------------- evaluation


def polarity_accuracy(pred: np.ndarray, target: np.ndarray) -> float:
    keep = target != 0
    return float(((pred[keep] > 0) == (target[keep] > 0)).mean())


def unimodal_metrics(runtime, samples: list[Sample]) -> dict[str, float]:
    pred = runtime.predict(samples)["score"]
    target = np.array([s.label for s in samples])
    m = sentiment_metrics(pred, target)
    return {"n": len(samples), "mae": m["mae"], "corr": m["corr"], "polarity_acc": polarity_accuracy(pred, target)}


def evaluate_shipped(model_dir: Path, texts, voices, faces, test_tuples, rng, data_root: Path) -> dict:
    """Through ONNX Runtime, on held-out data only:
    - each modality alone, on its corpus's held-out split;
    - the test tuples, all of them and split into agreeing and disagreeing ones;
    - face + voice with no text, against the tuple's non-verbal valence;
    - each modality's mean |Shapley value| on the test tuples, beside its reliability;
    - held-out RAVDESS clips through the app's whole path (file -> front end -> ONNX);
    - the MI diagnostics on agreeing vs disagreeing versions of the same tuples."""
    from export.runtime import OnnxModel
    from .features import AUDIO_DIM, VISUAL_DIM

    runtime = OnnxModel(model_dir, providers=["CPUExecutionProvider"])
    no_audio, no_visual = np.zeros((0, AUDIO_DIM), np.float32), np.zeros((0, VISUAL_DIM), np.float32)

    def sample(text="", label=0.0, audio=no_audio, visual=no_visual) -> Sample:
        return Sample("", text, label, {"audio": audio, "visual": visual})

    report = {"unimodal": {
        "text_mosi_test": unimodal_metrics(runtime, [sample(t, y) for src, t, y in texts["test"] if src == "mosi"]),
        "text_sst_test": unimodal_metrics(runtime, [sample(t, y) for src, t, y in texts["test"] if src == "sst"]),
        "audio_ravdess_test": unimodal_metrics(runtime, [sample(label=v["valence"], audio=v["features"])
                                                         for v in voices["test"] if v["voice_found"]]),
        "visual_fer_test": unimodal_metrics(runtime, [sample(label=f["valence"], visual=f["features"]) for f in faces["test"] if f["face_found"]]),
    }}
    tuples = [sample(t["text"], t["label"], t["voice"]["features"], t["face"]["features"]) for t in test_tuples]
    agree = np.array([t["agree"] for t in test_tuples])
    outputs = runtime.predict(tuples)
    labels = np.array([s.label for s in tuples])
    report["tuples_test"] = sentiment_metrics(outputs["score"], labels)
    report["tuples_test_agreeing"] = {"n": int(agree.sum()), **sentiment_metrics(outputs["score"][agree], labels[agree])}
    report["tuples_test_disagreeing"] = {"n": int((~agree).sum()), **sentiment_metrics(outputs["score"][~agree], labels[~agree])}
    nonverbal = [sample("", (t["voice"]["valence"] + t["face"]["valence"]) / 2, t["voice"]["features"], t["face"]["features"])
                 for t in test_tuples]
    report["face_voice_no_text"] = unimodal_metrics(runtime, nonverbal)
    report["mean_abs_shapley"] = {m: float(np.abs(outputs[f"shapley_{m}"]).mean()) for m in ("text", "audio", "visual")}
    report["mean_abs_shapley_disagreeing"] = {m: float(np.abs(outputs[f"shapley_{m}"][~agree]).mean())
                                              for m in ("text", "audio", "visual")}
    report["clip_path_ravdess_test"] = clip_path_metrics(model_dir, data_root, voices["test"])

    # Disagreeing versions of agreeing tuples: the same text with a voice and a face of the
    # opposite polarity (strong bins only, so that "opposite" is unambiguous).
    def opposite(pool, label):
        want = [p for p in pool if p.get("face_found", True) and p.get("voice_found", True)
                and np.sign(p["valence"]) == -np.sign(label) and abs(p["valence"]) >= 1.0]
        return want[rng.integers(len(want))]["features"]

    polar = [t for t in test_tuples if t["agree"] and abs(t["text_label"]) >= 1.0]
    agreeing = [sample(t["text"], t["text_label"], t["voice"]["features"], t["face"]["features"]) for t in polar]
    clashing = [sample(s.text, s.label, opposite(voices["test"], s.label), opposite(faces["test"], s.label)) for s in agreeing]
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
    report["mi_agree_vs_disagree"] = {"n_pairs": len(polar), **diagnostics}
    return report


def clip_path_metrics(model_dir: Path, data_root: Path, voices: list[dict]) -> dict:
    """Held-out RAVDESS files through the app's Predictor: the voice alone (no speech
    recognition), and with the words Whisper hears (the neutral sentences RAVDESS uses)."""
    from app.config import AppConfig
    from app.predictor import Predictor

    out = {}
    for name, asr in (("voice_alone", False), ("voice_with_asr_text", True)):
        predictor = Predictor(model_dir, AppConfig(asr=asr, threads=1))
        rows = [(predictor.predict(audio=data_root / "ravdess" / v["file"]), v["valence"]) for v in voices]
        pred, target = np.array([r["score"] for r, _ in rows]), np.array([y for _, y in rows])
        m = sentiment_metrics(pred, target)
        out[name] = {"n": len(rows), "mae": m["mae"], "corr": m["corr"], "polarity_acc": polarity_accuracy(pred, target),
                     "with_text": int(sum(r["text_source"] == "automatic" for r, _ in rows))}
    return out


# --------------------------------------------------------------------------- the recipe


def ship(cfg: ShipConfig) -> dict:
    from export.artifacts import MANIFEST, write_manifest
    from export.build import build_model_folder
    from .features import FrontEnd
    from .train import train

    data_root, work = Path(cfg.data_root), Path(cfg.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    frontend = FrontEnd()
    rng = np.random.default_rng(cfg.seed)

    texts = text_corpus(data_root)
    voices = voice_corpus(data_root, frontend, work / "ravdess_whisper_features.npz")
    faces = face_corpus(cfg, frontend, work / "fer_features.npz")
    detected = {s: float(np.mean([f["face_found"] for f in faces[s]])) for s in SPLITS}
    log.info("faces found by the detector: %s", detected)

    counts = {"train": cfg.tuples_train, "valid": cfg.tuples_valid, "test": cfg.tuples_test}
    tuples = {s: match_tuples(texts[s], voices[s], faces[s], n, cfg.sst_share, rng, cfg.disagree_share)
              for s, n in counts.items()}
    dataset = work / "tuples"
    if not (dataset / "samples.csv").is_file():
        write_dataset(dataset, tuples, frontend.spec())

    run_dir, out = work / "run", Path(cfg.out)
    train_cfg = TrainConfig(
        benchmark="featurized", data_dir=str(dataset), out_dir=str(run_dir), seed=cfg.seed, epochs=cfg.epochs,
        patience=cfg.patience, modality_dropout=cfg.modality_dropout, num_threads=cfg.num_threads, progress=False,
        unimodal_weight=cfg.unimodal_weight, target_rule=cfg.target_rule,
        model=ModelConfig(mean_pool=tuple(cfg.mean_pool)),
    )
    if cfg.evaluate_only:
        train_metrics = json.loads((run_dir / "metrics.json").read_text())
    else:
        train_metrics = train(train_cfg)
        if out.exists():
            shutil.rmtree(out)
        build_model_folder(run_dir, out)
    report = evaluate_shipped(out, texts, voices, faces, tuples["test"], np.random.default_rng(cfg.seed + 1), data_root)
    report.update({
        "recipe": asdict(cfg),
        "training": {k: train_metrics[k] for k in ("best_epoch", "epochs_run", "epoch_seconds", "valid", "train_entropy")},
        "train_config": {k: v for k, v in asdict(train_cfg).items() if k not in ("model", "tuple_nce")},
        "face_detection_rate": detected,
        "data": {
            "tuples": {s: len(t) for s, t in tuples.items()},
            "disagreeing_tuples": {s: int(sum(not x["agree"] for x in t)) for s, t in tuples.items()},
            "voices": {s: len(v) for s, v in voices.items()},
            "faces": {s: len(f) for s, f in faces.items()},
        },
    })
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "MODEL_CARD.md").write_text(model_card(report))
    # The manifest covers every file that ships, metrics included.
    fields = {k: v for k, v in json.loads((out / MANIFEST).read_text()).items() if k != "files"}
    write_manifest(out, **fields)
    log.info("shipped %s: %s", out, json.dumps(report["unimodal"]))
    return report


def model_card(report: dict) -> str:
    """MODEL_CARD.md, written from the measured report so that a rebuild keeps it true."""
    u = report["unimodal"]
    r = report["recipe"]
    row = lambda name, m: f"| {name} | {m['n']} | {m['mae']:.3f} | {m['corr']:.3f} | {100 * m['polarity_acc']:.1f} % |"
    tuples = lambda name, m: (f"| {name} | {m.get('n', report['data']['tuples']['test'])} | {m['mae']:.3f} | {m['corr']:.3f} | "
                              f"{100 * m['acc2_non0']:.1f} % |")
    mi = report["mi_agree_vs_disagree"]
    mi_rows = "\n".join(
        f"| `{k}` | {v['agree_mean']:.3f} | {v['disagree_mean']:.3f} | {v['paired_diff_mean']:+.3f} ± {v['paired_diff_se']:.3f} | {100 * v['agree_higher_share']:.0f} % |"
        for k, v in mi.items() if k != "n_pairs"
    )
    shap, shap_dis = report["mean_abs_shapley"], report["mean_abs_shapley_disagreeing"]
    reliability = {"text": u["text_mosi_test"]["corr"], "audio": u["audio_ravdess_test"]["corr"], "visual": u["visual_fer_test"]["corr"]}
    shap_rows = "\n".join(f"| {m} | {reliability[m]:.3f} | {shap[m]:.3f} | {shap_dis[m]:.3f} |" for m in ("text", "audio", "visual"))
    clip = report["clip_path_ravdess_test"]
    clip_row = lambda name, m: f"| {name} | {m['n']} | {m['mae']:.3f} | {m['corr']:.3f} | {100 * m['polarity_acc']:.1f} % |"
    voice = ", ".join(f"{k} {v:+.1f}" for k, v in VOICE_VALENCE.items())
    face = ", ".join(f"{k} {v:+.1f}" for k, v in FACE_VALENCE.items())
    d = report["data"]
    return f"""# mmim-clip v2: MMIM for uploaded clips (text + voice + face)

An MMIM model (MiniLM-L6 text encoder, LSTM audio and visual encoders, fusion MLP,
Barber-Agakov and CPC mutual-information terms, one auxiliary head per modality) that
regresses sentiment in [-3, 3] from a transcript, the voice and the face of a clip. It
takes the features of `model/features` (the app's front end: Whisper base encoder frames
for the voice, a face detector and expression CNN for the face) and runs in ONNX Runtime.

**It was not trained on aligned multimodal recordings.** No raw, aligned
text + audio + video sentiment corpus could be obtained. Each modality comes from
a different real corpus, and the three were paired by the recipe below, not recorded
together.

## Data and terms

| modality | corpus | split used | terms |
|---|---|---|---|
| text | CMU-MOSI transcripts (standard folds) and SST sentences | their standard splits | MOSI: research use with citation (Zadeh et al. 2016); SST: research corpus (Socher et al. 2013) |
| voice | RAVDESS speech, 1,440 clips, 24 actors | actors 1-18 / 19-21 / 22-24 (speaker-independent) | **CC BY-NC-SA 4.0** (Livingstone & Russo 2018): non-commercial, share-alike |
| face | FER2013 faces | Training / PublicTest / PrivateTest | research challenge data, **terms not verified**: treat as non-commercial |

The voice features are Whisper base's encoder (MIT). This model is for **research and
non-commercial use only** (RAVDESS, FER2013).

Valence labels:
- voice, by RAVDESS emotion (x{STRONG} for strong intensity): {voice};
- face, by FER2013 expression: {face};
- text: the corpus label (MOSI's [-3, 3]; SST's `label_pm3`).

## Recipe (`python -m model.ship`)

1. Every RAVDESS clip goes through the front end's audio path: Silero VAD, Whisper base
   encoder frames over the kept speech, mean-pooled to 10 Hz (512-d).
2. {r['faces_train']} / {r['faces_valid']} / {r['faces_test']} FER faces, balanced over
   expressions, become {r['face_frames']}-frame clips (upscaled x{r['face_scale']}, framed,
   jittered) and go through the visual path (yuface face detection, expression CNN, geometry).
   The detector found a face in {100 * report['face_detection_rate']['train']:.0f} % of the
   training faces; the others are dropped, as the app would see no face.
3. Tuples: a text (SST with probability {r['sst_share']}, else MOSI) with a voice and a face from
   the same split. The voice comes from the text's valence bin (edges {list(BIN_EDGES)}),
   except with probability {r['disagree_share']}, when its bin is drawn at random; the face
   likewise, independently. So {d['disagreeing_tuples']['train']} of {d['tuples']['train']} training tuples
   ({100 * d['disagreeing_tuples']['train'] / d['tuples']['train']:.0f} %) have a voice or a face that disagrees with the words.
   {d['tuples']['train']} / {d['tuples']['valid']} / {d['tuples']['test']} tuples.
4. **Target rule** (`model/targets.py`, "words first"), applied after modality dropout to
   the modalities the model sees: with c = min(1, |y_text| / 1.5) and w = 0.5 + 0.5 c,
   the target is w y_text + (1 − w) mean(y_voice, y_face). Clear words decide; neutral
   words let the voice and the face move the score; with no text the target is the mean
   of the voice's and the face's valence, with one modality its own valence.
5. MMIM trains on them (the voice encoder also projects the mean of its Whisper frames
   beside the LSTM state) with modality dropout {report['train_config']['modality_dropout']} (a missing
   modality becomes a learned "absent" vector) and unimodal heads (L1 weight
   {report['train_config']['unimodal_weight']}, each against its own modality's valence), selected
   on validation MAE (best epoch {report['training']['best_epoch']} of {report['training']['epochs_run']}).
6. Exported to ONNX with the parity check of `python -m export`.

## Metrics (held-out splits, through ONNX Runtime)

Each modality alone (the other two absent):

| evaluation | n | MAE | Corr | polarity accuracy |
|---|---|---|---|---|
{row("text alone, MOSI standard test fold", u["text_mosi_test"])}
{row("text alone, SST test", u["text_sst_test"])}
{row("voice alone, RAVDESS actors 22-24 (valence)", u["audio_ravdess_test"])}
{row("face alone, FER2013 PrivateTest, faces found (valence)", u["visual_fer_test"])}
{row("face + voice, no text, test tuples (their mean valence)", report["face_voice_no_text"])}

The app's whole path on held-out RAVDESS files (decode → front end → ONNX), against the
voice's valence; RAVDESS sentences are neutral ("Kids are talking by the door"):

| evaluation | n | MAE | Corr | polarity accuracy |
|---|---|---|---|---|
{clip_row("voice alone (no speech recognition)", clip["voice_alone"])}
{clip_row("voice + the words Whisper hears", clip["voice_with_asr_text"])}

Test tuples, target by the words-first rule:

| tuples | n | MAE | Corr | Acc-2 non0 |
|---|---|---|---|---|
{tuples("all", report["tuples_test"])}
{tuples("agreeing (one valence bin)", report["tuples_test_agreeing"])}
{tuples("disagreeing", report["tuples_test_disagreeing"])}

### Does each modality weigh what it is worth?

Mean |Shapley value| of each modality on the test tuples (score units), beside its
reliability (Corr of that modality alone with its own valence, from the first table):

| modality | reliability (Corr alone) | mean \|Shapley\|, all tuples | disagreeing tuples |
|---|---|---|---|
{shap_rows}

### Do the MI diagnostics mean something?

{mi['n_pairs']} agreeing test tuples with a clearly polar text (|label| ≥ 1), scored twice: with the
matched voice and face, and with a voice and a face of the opposite polarity. Mean of
each diagnostic (nats for BA and CPC, score units for Shapley values, interactions and
contributions), the paired difference ± its standard error, and how often the agreeing
version is higher:

| diagnostic | agreeing | disagreeing | difference | agreeing higher |
|---|---|---|---|---|
{mi_rows}

## Intended use and limitations

- Intended: a demonstration of multimodal sentiment analysis with per-modality diagnostics,
  and a starting point. For a real product, retrain on aligned clips of your own domain
  (`python -m model.featurize` + `python -m model.train --benchmark featurized` + `python -m export`).
- Voices are acted emotional speech of two fixed sentences by 24 North-American actors;
  faces are small grey web photos. Real uploads differ from both, and the voice branch
  has never heard spontaneous speech, other accents or other languages.
- The fusion learned how much to trust each modality from a rule, not from people.
- Speech in another language is flagged and its words are not scored; the voice and the
  face still are.
- Not for decisions about people.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_flags(parser, ShipConfig)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ship(dataclass_from_args(ShipConfig, args))


if __name__ == "__main__":
    main()
