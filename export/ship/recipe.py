"""Build the shipped clip model (weights/mmim-clip) from the real data in shared/data.

    python -m export.ship --out weights/mmim-clip

No aligned text + audio + video sentiment corpus can be had here, so the model
is built from real unimodal recordings, each run through the app's own front end:
- text:   MOSI transcripts (standard folds) and SST sentences, with their labels;
- audio:  RAVDESS speech (speaker-independent actor splits), valence from emotion
          and intensity (VOICE_VALENCE); a copy of each clip under random real
          recording conditions (codecs, rooms, noise, level, telephone); and real
          plain English speech (shared/data/speech, split by speaker) at valence 0,
          which anchors "neutral" on speech that is not acted;
- visual: FER2013 faces, each made into a short clip of jittered frames, valence
          from the expression (FACE_VALENCE).
The text reader is trained first, on text alone (model/pretrain_text.py: MOSI's
training fold and SST, selected on MOSI's validation fold, lower layers frozen and
cached), then frozen: the fusion trains on its cached outputs.
Tuples pair a text with a voice and a face from the same split. Most share the
text's valence bin (polarity and strength); in `disagree_share` of them the voice,
and independently the face, come from a random bin instead, so that the fusion
sees modalities that disagree. Each modality keeps its own valence, and the target
is the words-first mix of the modalities the model sees (model/data/targets.py). MMIM
trains on them as on any featurized dataset, with unimodal heads and modality
dropout, and is exported and evaluated through ONNX Runtime.

Every step caches its output under --work-dir, so a rerun after a crash resumes.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
from dataclasses import asdict, dataclass, field, fields
from datetime import date
from pathlib import Path

import numpy as np

from model.cli import add_dataclass_flags, dataclass_from_args
from model.config import ModelConfig, TrainConfig
from model.data.featurized import SPLITS
from model.features import FrontEnd
from model.files import data_root
from model.pretrain_text import PretrainConfig, pretrain
from model.train import train

from ..artifacts import MANIFEST
from ..build import build_model_folder, keep_variants
from .card import write_report
from .corpora import (conditioned_voice_corpus, face_corpus, neutral_voice_corpus, plain_speech_corpus, text_corpus,
                      voice_corpus)
from .evaluate import compare_variants, evaluate_shipped
from .tuples import match_tuples, write_dataset

log = logging.getLogger("mmim.ship")


@dataclass
class ShipConfig:
    data_root: str = ""  # "": model.files.data_root() ($MMIM_DATA, else shared/data beside the checkout)
    work_dir: str = "runs/ship"
    out: str = "weights/mmim-clip"
    seed: int = 0
    # Matched tuples per split.
    tuples_train: int = 4000
    tuples_valid: int = 400
    tuples_test: int = 1200
    # RAVDESS clips per split, spread over its actors; 0: all of them (the release). Smaller
    # numbers make smoke runs and tests.
    voices_per_split: int = 0
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
    # Voices at valence 0 added beside RAVDESS and plain English (corpora.NEUTRAL_VOICES):
    # "other_languages", "backwards".
    neutral_voices: tuple[str, ...] = ()
    # The voice encoder also projects the mean of the Whisper frames (model/encoders.py).
    mean_pool: tuple[str, ...] = ("audio",)
    text_encoder: str = "mpnet"  # model.text_models: "" (MiniLM), "mpnet", or a local directory
    # The text reader: epochs of text-only training before the fusion (0: the encoder trains
    # with the fusion instead), its frozen lower layers (with 0 epochs, those of the encoder
    # in the fusion: all of them reads the stock encoder unchanged), MOSI's weight against SST,
    # and a row limit per split for smoke runs.
    text_reader_epochs: int = 3
    text_reader_frozen_layers: int = 8
    text_reader_corpora: tuple[str, ...] = ("sst",)  # besides MOSI (model/pretrain_text.py)
    text_reader_mosi_copies: int = 2
    text_reader_limit: int = 0
    # The graphs that ship: "fp32" (model.onnx), "int8" (model.int8.onnx); the first is the default.
    variants: tuple[str, ...] = ("int8",)
    num_threads: int = 0
    # Measure the folder at --out again on every held-out evaluation, without training: the
    # recipe is the folder's own (only the paths and threads come from here), and how it
    # was built and trained is kept from its metrics.json.
    evaluate_only: bool = False


@dataclass
class Corpora:
    """Everything a build trains and is measured on, each corpus through the front end."""
    texts: dict
    clean: dict        # RAVDESS voices
    conditioned: dict  # the same under real recording conditions
    plain: dict        # real plain English speech
    faces: dict
    tuples: dict       # matched (text, voice, face) per split
    neutral: dict = field(default_factory=dict)  # kind -> voices at valence 0 (ShipConfig.neutral_voices)

    @property
    def voices(self) -> dict:
        """Every voice corpus together, per split."""
        return {s: self.clean[s] + self.conditioned[s] + self.plain[s] + [v for pool in self.neutral.values() for v in pool[s]]
                for s in SPLITS}

    @property
    def detected(self) -> dict:
        """Share of FER clips the detector found a face in, per split."""
        return {s: float(np.mean([f["face_found"] for f in self.faces[s]])) for s in SPLITS}


def build_corpora(cfg: ShipConfig, root: Path, work: Path, frontend) -> Corpora:
    """The corpora and tuples, cached under work (a rerun reads them back); the same seed
    gives the same tuples."""
    texts = text_corpus(root)
    suffix = f"-{cfg.voices_per_split}" if cfg.voices_per_split else ""
    clean = voice_corpus(root, frontend, work / f"ravdess_whisper_features{suffix}.npz", cfg.voices_per_split)
    conditioned = conditioned_voice_corpus(root, frontend, work / f"ravdess_conditioned_features{suffix}.npz", clean, cfg.seed)
    plain = plain_speech_corpus(root, frontend, work / f"plain_speech_features{suffix}.npz", cfg.voices_per_split)
    faces = face_corpus(cfg, root, frontend, work / "fer_features.npz")
    neutral = {kind: neutral_voice_corpus(kind, root, frontend, work / f"{kind}_features{suffix}.npz", clean, cfg.voices_per_split)
               for kind in cfg.neutral_voices}
    corpora = Corpora(texts, clean, conditioned, plain, faces, {}, neutral)
    log.info("faces found by the detector: %s", corpora.detected)
    rng = np.random.default_rng(cfg.seed)
    counts = {"train": cfg.tuples_train, "valid": cfg.tuples_valid, "test": cfg.tuples_test}
    voices = corpora.voices
    corpora.tuples = {s: match_tuples(texts[s], voices[s], faces[s], n, cfg.sst_share, rng, cfg.disagree_share)
                      for s, n in counts.items()}
    return corpora


def evaluate(cfg: ShipConfig, c: Corpora, root: Path, out: Path) -> dict:
    """Every held-out evaluation of the folder at out, and what it was built from."""
    report = evaluate_shipped(out, c.texts, c.voices, c.faces, c.tuples["test"], np.random.default_rng(cfg.seed + 1), root,
                              {"clean": c.clean, "conditioned": c.conditioned, "plain": c.plain},
                              (cfg.face_scale, cfg.face_frames), cfg.voices_per_split, cfg.num_threads)
    report["face_detection_rate"] = c.detected
    report["data"] = {
        "tuples": {s: len(t) for s, t in c.tuples.items()},
        "disagreeing_tuples": {s: int(sum(not x["agree"] for x in t)) for s, t in c.tuples.items()},
        "voices": {s: len(v) for s, v in c.voices.items()},
        "voice_sources": {name: {s: len(v) for s, v in pool.items()}
                          for name, pool in (("ravdess", c.clean), ("ravdess_conditioned", c.conditioned),
                                             ("plain_speech", c.plain), *c.neutral.items())},
        "faces": {s: len(f) for s, f in c.faces.items()},
    }
    return report


def ship(cfg: ShipConfig) -> dict:
    root, work = Path(cfg.data_root or data_root()), Path(cfg.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    if cfg.evaluate_only:
        return reevaluate(cfg, root, work)
    frontend = FrontEnd()
    corpora = build_corpora(cfg, root, work, frontend)
    dataset = work / "tuples"
    if not (dataset / "samples.csv").is_file():
        write_dataset(dataset, corpora.tuples, frontend.spec())

    run_dir, out = work / "run", Path(cfg.out)
    text_encoder, frozen = text_reader(cfg, root, work)
    train_cfg = TrainConfig(
        benchmark="featurized", data_dir=str(dataset), out_dir=str(run_dir), seed=cfg.seed, epochs=cfg.epochs,
        patience=cfg.patience, modality_dropout=cfg.modality_dropout, num_threads=cfg.num_threads, progress=False,
        unimodal_weight=cfg.unimodal_weight, target_rule=cfg.target_rule,
        model=ModelConfig(mean_pool=tuple(cfg.mean_pool), text_encoder=text_encoder, text_frozen_layers=frozen),
    )
    train_metrics = train(train_cfg)
    if out.exists():
        shutil.rmtree(out)
    build_model_folder(run_dir, out, variants=tuple(v for v in cfg.variants if v != "fp32"))
    variant_check = compare_variants(out, corpora.texts, cfg.variants, threads=cfg.num_threads)
    keep_variants(out, cfg.variants, variant_check=variant_check)
    report = evaluate(cfg, corpora, root, out)
    report["variants"] = json.loads((out / MANIFEST).read_text())["variant_check"]
    if cfg.text_reader_epochs:
        reader = json.loads((work / "text_reader" / "pretrain_metrics.json").read_text())
        report["text_reader"] = {k: reader[k] for k in ("best_epoch", "best_valid_mae", "history")}
    report.update({
        "recipe": asdict(cfg),
        "training": {k: train_metrics[k] for k in ("text_encoder", "best_epoch", "epochs_run", "epoch_seconds", "valid", "train_entropy")},
        "train_config": {k: v for k, v in asdict(train_cfg).items() if k not in ("model", "tuple_nce")},
    })
    write_report(out, report)
    log.info("shipped %s: %s", out, json.dumps(report["unimodal"]))
    return report


# What a re-evaluation keeps from the folder's metrics.json: how the model was built and trained.
BUILD_RECORD = ("recipe", "training", "train_config", "text_reader", "variants", "requantized")


def folder_recipe(cfg: ShipConfig) -> ShipConfig:
    """The recipe the folder at cfg.out was built by (its metrics.json), with cfg's paths and threads."""
    earlier = json.loads((Path(cfg.out) / "metrics.json").read_text())["recipe"]
    known = {f.name for f in fields(ShipConfig)}
    return ShipConfig(**{**{k: v for k, v in earlier.items() if k in known},
                         "data_root": cfg.data_root, "work_dir": cfg.work_dir, "out": cfg.out,
                         "num_threads": cfg.num_threads, "evaluate_only": False})


def reevaluate(cfg: ShipConfig, root: Path, work: Path) -> dict:
    """--evaluate-only: the folder at cfg.out measured again on every held-out evaluation, with
    corpora and tuples made by its own recipe (cached under work). The data counts must equal
    the build's, or these are not the tuples it was measured on, and nothing is written."""
    out = Path(cfg.out)
    earlier = json.loads((out / "metrics.json").read_text())
    recipe = folder_recipe(cfg)
    report = evaluate(recipe, build_corpora(recipe, root, work, FrontEnd()), root, out)
    if report["data"] != earlier["data"]:
        raise ValueError(f"the corpora made now differ from the build's: {report['data']} vs {earlier['data']}")
    report.update({k: earlier[k] for k in BUILD_RECORD if k in earlier})
    report["reevaluated"] = {"date": date.today().isoformat(),
                             "command": f"python -m export.ship --evaluate-only --out {cfg.out}"}
    write_report(out, report)
    log.info("re-evaluated %s: %s", out, json.dumps(report["unimodal"]))
    return report


def text_reader(cfg: ShipConfig, root: Path, work: Path) -> tuple[str, int]:
    """(text encoder for the fusion, its frozen layers): the reader trained on text alone, all
    of it frozen; or, with text_reader_epochs 0, cfg.text_encoder to train with the fusion
    above its lower text_reader_frozen_layers."""
    if not cfg.text_reader_epochs:
        return cfg.text_encoder, cfg.text_reader_frozen_layers
    folder = work / "text_reader"
    if not (folder / "pretrain_metrics.json").is_file():  # written last: the reader is complete
        pretrain(PretrainConfig(
            data_dir=str(root / "text"), text_encoder=cfg.text_encoder, out_dir=str(folder), epochs=cfg.text_reader_epochs,
            corpora=tuple(cfg.text_reader_corpora), mosi_copies=cfg.text_reader_mosi_copies, select_on="mosi",
            frozen_layers=cfg.text_reader_frozen_layers, seed=cfg.seed, num_threads=cfg.num_threads, progress=False,
            limit=cfg.text_reader_limit))
    layers = json.loads((folder / "config.json").read_text())["num_hidden_layers"]
    return str(folder), layers


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_flags(parser, ShipConfig)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ship(dataclass_from_args(ShipConfig, args))

