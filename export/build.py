"""Checkpoint -> exported model folder, with the parity check and the variants."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import onnx

from model.checkpoint import TEXT_ENCODER_DIR, load_checkpoint
from model.data import Collator, load_splits
from model.data.samples import spread
from model.metrics import sentiment_metrics
from model.onnx_session import make_session

from .artifacts import FEATURE_SPEC, MANIFEST, VARIANT_FILES, feature_spec_for, write_manifest
from .onnx import OPSET, PARITY_RTOL, PARITY_TOLERANCE, PERCENTILE_TOLERANCE, check_parity, convert_fp16, export_onnx, ragged_batch, sample_batches
from .quantize import CALIBRATION_CLIPS, quantize_int8
from .runtime import OnnxModel

log = logging.getLogger("mmim.export")


def tensor_specs(path: Path) -> dict[str, list[dict]]:
    """Names, element types and (symbolic) shapes of the graph's inputs and outputs."""
    graph = onnx.load(str(path), load_external_data=False).graph

    def spec(value):
        t = value.type.tensor_type
        dims = [d.dim_param or d.dim_value for d in t.shape.dim]
        return {"name": value.name, "dtype": onnx.TensorProto.DataType.Name(t.elem_type).lower(), "shape": dims}

    return {"inputs": [spec(v) for v in graph.input], "outputs": [spec(v) for v in graph.output]}


def evaluate_variant(model_dir: Path, variant: str, samples) -> dict[str, float]:
    runtime = OnnxModel(model_dir, variant, providers=["CPUExecutionProvider"])
    return sentiment_metrics(runtime.predict(samples)["score"], [s.label for s in samples])


def build_model_folder(
    ckpt_dir: str | Path,
    out_dir: str | Path,
    variants: tuple[str, ...] = ("fp32",),
    data_dir: str | None = None,
    evaluate: bool = False,
) -> dict:
    """Export, check parity on real samples (raising ParityError), add variants, write the manifest."""
    ckpt_dir, out_dir = Path(ckpt_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = json.loads((ckpt_dir / "config.json").read_text())
    model, tokenizer = load_checkpoint(ckpt_dir)

    onnx_path = export_onnx(model, out_dir / VARIANT_FILES["fp32"])
    shutil.copytree(ckpt_dir / TEXT_ENCODER_DIR, out_dir / TEXT_ENCODER_DIR, dirs_exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out_dir / FEATURE_SPEC).write_text(json.dumps(feature_spec_for(ckpt_dir, config), indent=2) + "\n")

    benchmark = config.get("train", {}).get("benchmark")
    splits = load_splits(benchmark, data_dir or config["train"]["data_dir"], model.config.context)
    collate = Collator(tokenizer, model.config.max_text_len, model.config.modalities)
    session = make_session(onnx_path, ["CPUExecutionProvider"])
    batches = sample_batches(splits["test"])
    batches.append(ragged_batch(batches[-1]))
    parity = check_parity(model, session, collate, batches)
    log.info("parity on %s test samples, batches 1/3/32 and a ragged one: max |ORT - PyTorch| = %.2e", benchmark, max(parity.values()))

    for variant in variants:
        if variant == "int8":
            calibration = [{k: v.numpy() for k, v in collate([s]).model_inputs().items()}
                           for s in spread(splits["train"], CALIBRATION_CLIPS)]
            quantize_int8(onnx_path, out_dir / VARIANT_FILES["int8"], calibration)
        elif variant == "fp16":
            convert_fp16(onnx_path, out_dir / VARIANT_FILES["fp16"])
        elif variant != "fp32":
            raise ValueError(f"unknown variant {variant!r}; choose from {sorted(VARIANT_FILES)}")
    specs = tensor_specs(onnx_path)
    manifest_fields = dict(
        format="mmim-onnx/1",
        opset=OPSET,
        variants={v: VARIANT_FILES[v] for v in ("fp32", *variants)},
        parity={"tolerance": PARITY_TOLERANCE, "rtol": PARITY_RTOL, "percentile_tolerance": PERCENTILE_TOLERANCE, "batch_sizes": [1, 3, 32], "ragged_batch": True, "max_abs_diff": parity},
        **specs,
    )
    manifest = write_manifest(out_dir, **manifest_fields)
    if evaluate:
        # Metric change of each variant on the checkpoint's test split, through ONNX Runtime on CPU.
        results = {v: evaluate_variant(out_dir, v, splits["test"]) for v in manifest["variants"]}
        manifest_fields["variant_test_metrics"] = results
        manifest = write_manifest(out_dir, **manifest_fields)
    return manifest


def keep_variants(out_dir: str | Path, variants: tuple[str, ...], **fields) -> dict:
    """Keep only `variants` in an exported folder, the first as its default graph (for example
    int8 alone where the fp32 graph is too large to ship), and rewrite the manifest with `fields`."""
    out_dir = Path(out_dir)
    manifest = json.loads((out_dir / MANIFEST).read_text())
    unknown = [v for v in variants if v not in manifest["variants"]]
    if not variants or unknown:
        raise ValueError(f"cannot keep {list(variants)}: the folder has {sorted(manifest['variants'])}")
    for variant, name in manifest["variants"].items():
        if variant not in variants:
            (out_dir / name).unlink()
    kept = {k: v for k, v in manifest.items() if k != "files"}
    kept.update(fields, variants={v: manifest["variants"][v] for v in variants})
    return write_manifest(out_dir, **kept)
