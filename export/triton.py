"""Write a Triton Inference Server model repository for an exported model folder.

    <repo>/<name>/config.pbtxt
    <repo>/<name>/1/model.onnx

Triton's dims leave out the batch axis (max_batch_size > 0); per-sample scalars
(lengths, scores) travel as [1] and are reshaped to [] for the graph. The
dynamic batcher only merges requests of equal shapes, so clients that pad
tokens to max_text_len and frames to a fixed count get the most batching.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from .artifacts import verify_folder

TRITON_TYPES = {"int64": "TYPE_INT64", "float": "TYPE_FP32", "float16": "TYPE_FP16", "int32": "TYPE_INT32"}


def _tensor_block(spec: dict) -> str:
    per_sample = spec["shape"][1:]
    dims = [d if isinstance(d, int) and d > 0 else -1 for d in per_sample]
    lines = [f'    name: "{spec["name"]}"', f"    data_type: {TRITON_TYPES[spec['dtype']]}"]
    if dims:
        lines.append(f"    dims: [ {', '.join(str(d) for d in dims)} ]")
    else:
        lines += ["    dims: [ 1 ]", "    reshape: { shape: [ ] }"]
    return "  {\n" + "\n".join(lines) + "\n  }"


def triton_config(manifest: dict, name: str, max_batch_size: int = 64, queue_delay_us: int = 2000) -> str:
    inputs = ",\n".join(_tensor_block(s) for s in manifest["inputs"])
    outputs = ",\n".join(_tensor_block(s) for s in manifest["outputs"])
    return (
        f'name: "{name}"\n'
        'platform: "onnxruntime_onnx"\n'
        f"max_batch_size: {max_batch_size}\n"
        f"input [\n{inputs}\n]\n"
        f"output [\n{outputs}\n]\n"
        f"dynamic_batching {{\n  max_queue_delay_microseconds: {queue_delay_us}\n}}\n"
        "instance_group [\n  {\n    kind: KIND_AUTO\n    count: 1\n  }\n]\n"
    )


def write_triton_repository(model_dir: str | Path, repo_dir: str | Path, name: str = "mmim") -> Path:
    manifest = verify_folder(model_dir)
    target = Path(repo_dir) / name
    (target / "1").mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(model_dir) / manifest["variants"]["fp32"], target / "1" / "model.onnx")
    (target / "config.pbtxt").write_text(triton_config(manifest, name))
    return target
