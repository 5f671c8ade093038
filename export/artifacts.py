"""The exported model folder: files, feature spec and manifest.

    <dir>/model.onnx             fp32 graph
    <dir>/model.int8.onnx        optional, CPU
    <dir>/model.fp16.onnx        optional, GPU
    (the manifest's first variant is the folder's default graph: fp32, or int8 alone
    where the fp32 graph is too large to ship)
    <dir>/text_encoder/          tokenizer (tokenisation happens outside the graph)
    <dir>/config.json            the checkpoint's model config
    <dir>/feature_spec.json      what the graph's non-verbal inputs are
    <dir>/manifest.json          sha256 of every file, opset, input and output specs
"""
from __future__ import annotations

import json
from pathlib import Path

from model.files import FEATURE_SPEC, atomic_write_text, sha256

MANIFEST = "manifest.json"
VARIANT_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx", "fp16": "model.fp16.onnx"}


class ModelFolderError(ValueError):
    """The model folder is incomplete, altered, or does not fit the feature front end."""



def feature_spec_for(ckpt_dir: Path, config: dict) -> dict:
    """The checkpoint's own feature spec if it has one, else the MOSI benchmark features."""
    own = Path(ckpt_dir) / FEATURE_SPEC
    if own.is_file():
        return json.loads(own.read_text())
    model = config["model"]
    benchmark = config.get("train", {}).get("benchmark", "unknown")
    streams = {
        m: {"source": f"{benchmark} utterance-level features (shared/data/mosi)", "dim": model[f"{m}_dim"], "frames": "1 per segment"}
        for m in ("audio", "visual")
        if m in model["modalities"]
    }
    return {"name": f"{benchmark}-utterance-features", "modalities": list(model["modalities"]), "streams": streams}


def default_variant(manifest: dict) -> str:
    return next(iter(manifest["variants"]))


def write_manifest(out_dir: Path, **fields) -> dict:
    out_dir = Path(out_dir)
    files = {
        str(p.relative_to(out_dir)): sha256(p)
        for p in sorted(out_dir.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {"files": files, **fields}
    atomic_write_text(out_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


def verify_folder(model_dir: Path) -> dict:
    """The manifest, after checking that every file it lists is present and unaltered."""
    model_dir = Path(model_dir)
    path = model_dir / MANIFEST
    if not path.is_file():
        raise ModelFolderError(f"{model_dir} has no {MANIFEST}; export the checkpoint with `python -m export`")
    manifest = json.loads(path.read_text())
    for name, digest in manifest["files"].items():
        file = model_dir / name
        if not file.is_file():
            raise ModelFolderError(f"{file} is listed in the manifest but missing")
        if sha256(file) != digest:
            raise ModelFolderError(f"{file} does not match its sha256 in the manifest: the file was altered or corrupted; re-export")
    return manifest
