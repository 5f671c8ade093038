"""Build the shipped clip model (weights/mmim-clip) from the real data in shared/data.

    python -m model.ship --out weights/mmim-clip

No aligned text + audio + video sentiment corpus can be had here, so the model
is built from real unimodal recordings, each run through the app's own front end:
- text:   MOSI transcripts (standard folds) and SST sentences, with their labels;
- audio:  RAVDESS speech (speaker-independent actor splits), valence from emotion
          and intensity (VOICE_VALENCE);
- visual: FER2013 faces, each made into a short clip of jittered frames, valence
          from the expression (FACE_VALENCE).
Tuples pair a text with a voice and a face from the same split and the same
valence bin (polarity and strength); the target is the text's label. MMIM then
trains on them as on any featurized dataset, with modality dropout so that a
missing modality is handled, and is exported and evaluated through ONNX Runtime.

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
from .config import TrainConfig
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
    # MMIM training on the tuples (everything else as in TrainConfig).
    epochs: int = 16
    patience: int = 4
    modality_dropout: float = 0.5
    num_threads: int = 0


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
            meta.append({"id": Path(row["file"]).stem, "split": row["split"], "emotion": row["emotion"],
                         "valence": valence, "voiced_share": quality.get("voiced_share", 0.0)})
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


def match_tuples(texts, voices, faces, n: int, sst_share: float, rng: np.random.Generator) -> list[dict]:
    """n (text, voice, face) tuples of one split, the three from one valence bin.

    Texts are drawn first (from SST with probability sst_share), so the label
    distribution is the texts'; bins with no voice or no face are skipped.
    """
    voice_bins = {b: [v for v in voices if valence_bin(v["valence"]) == b] for b in range(len(BIN_EDGES) + 1)}
    face_bins = {b: [f for f in faces if f["face_found"] and valence_bin(f["valence"]) == b] for b in range(len(BIN_EDGES) + 1)}
    by_source = {src: [t for t in texts if t[0] == src] for src in ("mosi", "sst")}
    tuples = []
    while len(tuples) < n:
        source = "sst" if rng.random() < sst_share else "mosi"
        _, text, label = by_source[source][rng.integers(len(by_source[source]))]
        b = valence_bin(label)
        if not voice_bins[b] or not face_bins[b]:
            continue
        voice = voice_bins[b][rng.integers(len(voice_bins[b]))]
        face = face_bins[b][rng.integers(len(face_bins[b]))]
        tuples.append({"text": text, "source": source, "label": label, "voice": voice, "face": face})
    return tuples


def write_dataset(out: Path, tuples: dict[str, list[dict]], spec: dict) -> None:
    """The tuples in the layout `model.featurize` writes, so training takes the same path."""
    from .features.dataset import ERROR_COLUMNS, SAMPLE_COLUMNS, feature_path, load_featurized, normalisation, save_clip, write_csv

    rows = []
    for split, items in tuples.items():
        for i, t in enumerate(items):
            row = {"video_id": f"{split}{i:05d}", "clip_id": f"{t['voice']['id']}+{t['face']['id']}", "text": t["text"],
                   "text_source": "given", "label": t["label"], "split": split, "file": ""}
            quality = {"voice": t["voice"]["id"], "face": t["face"]["id"], "text_corpus": t["source"]}
            save_clip(feature_path(out, row["video_id"], row["clip_id"]), t["voice"]["features"], t["face"]["features"],
                      t["text"], "given", quality)
            rows.append(row)
    (out / "feature_spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    write_csv(out / "errors.csv", ERROR_COLUMNS, [])
    # samples.csv last: its presence marks a complete dataset.
    write_csv(out / "samples.csv", SAMPLE_COLUMNS, rows)
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


def evaluate_shipped(model_dir: Path, texts, voices, faces, test_tuples, rng) -> dict:
    """Per modality on each corpus's held-out split, on the matched tuples, and the
    MI diagnostics on agreeing vs disagreeing tuples, all through ONNX Runtime."""
    from export.runtime import OnnxModel
    from .features import AUDIO_DIM, VISUAL_DIM

    runtime = OnnxModel(model_dir, providers=["CPUExecutionProvider"])
    no_audio, no_visual = np.zeros((0, AUDIO_DIM), np.float32), np.zeros((0, VISUAL_DIM), np.float32)

    def sample(text="", label=0.0, audio=no_audio, visual=no_visual) -> Sample:
        return Sample("", text, label, {"audio": audio, "visual": visual})

    report = {"unimodal": {
        "text_mosi_test": unimodal_metrics(runtime, [sample(t, y) for src, t, y in texts["test"] if src == "mosi"]),
        "text_sst_test": unimodal_metrics(runtime, [sample(t, y) for src, t, y in texts["test"] if src == "sst"]),
        "audio_ravdess_test": unimodal_metrics(runtime, [sample(label=v["valence"], audio=v["features"]) for v in voices["test"]]),
        "visual_fer_test": unimodal_metrics(runtime, [sample(label=f["valence"], visual=f["features"]) for f in faces["test"] if f["face_found"]]),
    }}
    matched = [sample(t["text"], t["label"], t["voice"]["features"], t["face"]["features"]) for t in test_tuples]
    report["tuples_test"] = sentiment_metrics(runtime.predict(matched)["score"], [s.label for s in matched])

    # Disagreeing tuples: the same text with a voice and a face of the opposite polarity
    # (strong bins only, so that "opposite" is unambiguous).
    def opposite(pool, label):
        want = [p for p in pool if p.get("face_found", True) and np.sign(p["valence"]) == -np.sign(label) and abs(p["valence"]) >= 1.0]
        return want[rng.integers(len(want))]["features"]

    polar = [i for i, t in enumerate(test_tuples) if abs(t["label"]) >= 1.0]
    agreeing = [matched[i] for i in polar]
    clashing = [sample(s.text, s.label, opposite(voices["test"], s.label), opposite(faces["test"], s.label)) for s in agreeing]
    o_agree, o_clash = runtime.predict(agreeing), runtime.predict(clashing)
    diagnostics = {}
    for name in runtime.output_names:
        if name == "score":
            continue
        diff = o_agree[name] - o_clash[name]
        diagnostics[name] = {
            "agree_mean": float(o_agree[name].mean()), "disagree_mean": float(o_clash[name].mean()),
            "paired_diff_mean": float(diff.mean()), "paired_diff_se": float(diff.std(ddof=1) / np.sqrt(len(diff))),
            "agree_higher_share": float((diff > 0).mean()),
        }
    report["mi_agree_vs_disagree"] = {"n_pairs": len(polar), **diagnostics}
    return report


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
    voices = voice_corpus(data_root, frontend, work / "ravdess_features.npz")
    faces = face_corpus(cfg, frontend, work / "fer_features.npz")
    detected = {s: float(np.mean([f["face_found"] for f in faces[s]])) for s in SPLITS}
    log.info("faces found by the detector: %s", detected)

    counts = {"train": cfg.tuples_train, "valid": cfg.tuples_valid, "test": cfg.tuples_test}
    tuples = {s: match_tuples(texts[s], voices[s], faces[s], n, cfg.sst_share, rng) for s, n in counts.items()}
    dataset = work / "tuples"
    if not (dataset / "samples.csv").is_file():
        write_dataset(dataset, tuples, frontend.spec())

    run_dir = work / "run"
    train_cfg = TrainConfig(
        benchmark="featurized", data_dir=str(dataset), out_dir=str(run_dir), seed=cfg.seed, epochs=cfg.epochs,
        patience=cfg.patience, modality_dropout=cfg.modality_dropout, num_threads=cfg.num_threads, progress=False,
    )
    train_metrics = train(train_cfg)

    out = Path(cfg.out)
    if out.exists():
        shutil.rmtree(out)
    build_model_folder(run_dir, out)
    report = evaluate_shipped(out, texts, voices, faces, tuples["test"], np.random.default_rng(cfg.seed + 1))
    report.update({
        "recipe": asdict(cfg),
        "training": {k: train_metrics[k] for k in ("best_epoch", "epochs_run", "epoch_seconds", "valid", "train_entropy")},
        "train_config": {k: v for k, v in asdict(train_cfg).items() if k not in ("model", "tuple_nce")},
        "face_detection_rate": detected,
        "data": {
            "tuples": {s: len(t) for s, t in tuples.items()},
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
    t = report["tuples_test"]
    mi = report["mi_agree_vs_disagree"]
    r = report["recipe"]
    row = lambda name, m: f"| {name} | {m['n']} | {m['mae']:.3f} | {m['corr']:.3f} | {100 * m['polarity_acc']:.1f} % |"
    mi_rows = "\n".join(
        f"| `{k}` | {v['agree_mean']:.3f} | {v['disagree_mean']:.3f} | {v['paired_diff_mean']:+.3f} ± {v['paired_diff_se']:.3f} | {100 * v['agree_higher_share']:.0f} % |"
        for k, v in mi.items() if k != "n_pairs"
    )
    voice = ", ".join(f"{k} {v:+.1f}" for k, v in VOICE_VALENCE.items())
    face = ", ".join(f"{k} {v:+.1f}" for k, v in FACE_VALENCE.items())
    return f"""# mmim-clip: MMIM for uploaded clips (text + voice + face)

An MMIM model (MiniLM-L6 text encoder, LSTM audio and visual encoders, fusion MLP,
Barber-Agakov and CPC mutual-information terms) that regresses sentiment in [-3, 3]
from a transcript, the voice and the face of a clip. It takes the features of
`model/features` (the app's front end) and runs in ONNX Runtime.

**It was not trained on aligned multimodal recordings.** No raw, aligned
text + audio + video sentiment corpus could be obtained. Each modality comes from
a different real corpus, and the three were paired by sentiment, not recorded
together. It has never seen a person whose words, voice and face belong together.

## Data and terms

| modality | corpus | split used | terms |
|---|---|---|---|
| text | CMU-MOSI transcripts (standard folds) and SST sentences | their standard splits | MOSI: research use with citation (Zadeh et al. 2016); SST: research corpus (Socher et al. 2013) |
| voice | RAVDESS speech, 1,440 clips, 24 actors | actors 1-18 / 19-21 / 22-24 (speaker-independent) | **CC BY-NC-SA 4.0** (Livingstone & Russo 2018): non-commercial, share-alike |
| face | FER2013 faces | Training / PublicTest / PrivateTest | research challenge data, **terms not verified**: treat as non-commercial |

Acoustic features come from openSMILE (audEERING research licence: non-commercial).
So this model is for **research and non-commercial use only**.

Valence labels:
- voice, by RAVDESS emotion (x{STRONG} for strong intensity): {voice};
- face, by FER2013 expression: {face};
- text: the corpus label (MOSI's [-3, 3]; SST's `label_pm3`).

## Recipe (`python -m model.ship`)

1. Every RAVDESS clip goes through the front end's audio path (eGeMAPSv02 LLDs at 10 Hz).
2. {r['faces_train']} / {r['faces_valid']} / {r['faces_test']} FER faces, balanced over
   expressions, become {r['face_frames']}-frame clips (upscaled x{r['face_scale']}, framed,
   jittered) and go through the visual path (Haar face, expression CNN, geometry).
   The detector found a face in {100 * report['face_detection_rate']['train']:.0f} % of the
   training faces; the others are dropped, as the app would see no face.
3. Tuples: a text (SST with probability {r['sst_share']}, else MOSI) with a voice and a face from
   the same split and the same valence bin (edges {list(BIN_EDGES)}). The target is the
   text's label. {report['data']['tuples']['train']} / {report['data']['tuples']['valid']} / {report['data']['tuples']['test']} tuples.
4. MMIM trains on them like any featurized dataset, with modality dropout
   {report['train_config']['modality_dropout']} (a missing modality becomes a learned "absent"
   vector), selected on validation MAE (best epoch {report['training']['best_epoch']} of {report['training']['epochs_run']}).
5. Exported to ONNX with the parity check of `python -m export` (max |ORT − PyTorch| ≤ 1e-4).

## Metrics (held-out splits, through ONNX Runtime)

Each modality alone (the other two absent):

| evaluation | n | MAE | Corr | polarity accuracy |
|---|---|---|---|---|
{row("text alone, MOSI standard test fold", u["text_mosi_test"])}
{row("text alone, SST test", u["text_sst_test"])}
{row("voice alone, RAVDESS actors 22-24", u["audio_ravdess_test"])}
{row("face alone, FER2013 PrivateTest (faces found)", u["visual_fer_test"])}

Matched test tuples (all three modalities): MAE {t['mae']:.3f}, Corr {t['corr']:.3f},
Acc-2 non0 {100 * t['acc2_non0']:.1f} %, Acc-7 {100 * t['acc7']:.1f} %.

### Do the MI diagnostics mean something?

{mi['n_pairs']} test tuples with a clearly polar text (|label| ≥ 1), scored twice: with the
matched voice and face (agreeing), and with a voice and a face of the opposite polarity
(disagreeing). Mean of each diagnostic (nats for BA and CPC, score units for contributions),
the paired difference ± its standard error, and how often the agreeing version is higher:

| diagnostic | agreeing | disagreeing | difference | agreeing higher |
|---|---|---|---|---|
{mi_rows}

## Intended use and limitations

- Intended: a demonstration of multimodal sentiment analysis with per-modality MI
  diagnostics, and a starting point. For a real product, retrain on aligned clips of
  your own domain (`python -m model.featurize` + `python -m model.train --benchmark featurized`
  + `python -m export`).
- Voices are acted emotional speech of two fixed sentences; faces are small grey
  web photos. Real uploads differ from both.
- Text dominates: it is the only modality whose label is the target.
- **The voice branch is weak**: alone, on unseen RAVDESS actors, Corr {u['audio_ravdess_test']['corr']:.2f} and
  polarity accuracy {100 * u['audio_ravdess_test']['polarity_acc']:.0f} %; its contribution to fused scores is near 0.
  Do not read the voice's diagnostics as evidence about a speaker.
- Text alone is weaker than a text-only model (MOSI test MAE {u['text_mosi_test']['mae']:.3f} here vs 0.760 for
  text-only MMIM on mosi-std): the modality dropout and the mixed SST/MOSI targets cost it.
- English only. The automatic transcript (pocketsphinx) is weak; give the text when you can.
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
