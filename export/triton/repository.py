"""Write a Triton Inference Server model repository for an exported model folder.

Two flavours of the same model:
- `onnxruntime` (default), for NVIDIA's Triton container, which has the ONNX Runtime
  backend:  <repo>/<name>/config.pbtxt, <repo>/<name>/1/model.onnx
- `python`, for any tritonserver with the python backend (the one bundled in
  nvidia-pytriton, see export/triton/serve.sh): the same model.onnx run by
  export/triton/python_model.py on ONNX Runtime, copied as <repo>/<name>/1/model.py.

Triton's dims leave out the batch axis (max_batch_size > 0); per-sample scalars
(lengths, scores) travel as [1] per row. The onnxruntime flavour reshapes them to []
for the graph, and its dynamic batcher merges only requests of equal shapes, so
clients that pad tokens to max_text_len and frames to a fixed count batch best
(export.triton.client's `pad_tokens`, `pad_frames`). The python flavour marks its
inputs `allow_ragged_batch` and pads and merges ragged requests itself.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from export.artifacts import default_variant, verify_folder

TRITON_TYPES = {"int64": "TYPE_INT64", "float": "TYPE_FP32", "float16": "TYPE_FP16", "int32": "TYPE_INT32"}
BACKENDS = ("onnxruntime", "python")
PYTHON_MODEL = Path(__file__).with_name("python_model.py")


def _tensor_block(spec: dict, reshape_scalars: bool, ragged: bool = False) -> str:
    per_sample = spec["shape"][1:]
    dims = [d if isinstance(d, int) and d > 0 else -1 for d in per_sample]
    lines = [f'    name: "{spec["name"]}"', f"    data_type: {TRITON_TYPES[spec['dtype']]}"]
    if dims:
        lines.append(f"    dims: [ {', '.join(str(d) for d in dims)} ]")
    else:
        lines.append("    dims: [ 1 ]")
        if reshape_scalars:
            lines.append("    reshape: { shape: [ ] }")
    if ragged:
        lines.append("    allow_ragged_batch: true")
    return "  {\n" + "\n".join(lines) + "\n  }"


def triton_config(manifest: dict, name: str, backend: str = "onnxruntime", max_batch_size: int = 64,
                  queue_delay_us: int = 2000, parameters: dict[str, str] | None = None) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown Triton backend {backend!r}; choose from {BACKENDS}")
    python = backend == "python"
    inputs = ",\n".join(_tensor_block(s, not python, ragged=python) for s in manifest["inputs"])
    outputs = ",\n".join(_tensor_block(s, not python) for s in manifest["outputs"])
    head = 'backend: "python"\n' if python else 'platform: "onnxruntime_onnx"\n'
    params = "".join(
        f'parameters: {{\n  key: "{k}"\n  value: {{ string_value: "{v}" }}\n}}\n' for k, v in (parameters or {}).items()
    )
    return (
        f'name: "{name}"\n{head}'
        f"max_batch_size: {max_batch_size}\n"
        f"input [\n{inputs}\n]\n"
        f"output [\n{outputs}\n]\n"
        f"dynamic_batching {{\n  max_queue_delay_microseconds: {queue_delay_us}\n}}\n"
        f"instance_group [\n  {{\n    kind: {'KIND_CPU' if python else 'KIND_AUTO'}\n    count: 1\n  }}\n]\n"
        f"{params}"
    )


def write_triton_repository(model_dir: str | Path, repo_dir: str | Path, name: str = "mmim", backend: str = "onnxruntime",
                            max_batch_size: int = 64, queue_delay_us: int = 2000) -> Path:
    """<repo_dir>/<name>/ for `backend`; returns that folder."""
    manifest = verify_folder(model_dir)
    target = Path(repo_dir) / name
    (target / "1").mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(model_dir) / manifest["variants"][default_variant(manifest)], target / "1" / "model.onnx")
    parameters = None
    if backend == "python":
        shutil.copy2(PYTHON_MODEL, target / "1" / "model.py")
        encoder = json.loads((Path(model_dir) / "text_encoder" / "config.json").read_text())
        parameters = {"pad_token_id": str(encoder.get("pad_token_id") or 0), "intra_op_threads": "1"}
    (target / "config.pbtxt").write_text(triton_config(manifest, name, backend, max_batch_size, queue_delay_us, parameters))
    return target


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m export.triton", description="Write a Triton model repository "
                                     "for an exported model folder (e.g. weights/mmim-clip).")
    parser.add_argument("model_dir")
    parser.add_argument("--repo", required=True, help="the repository folder to write")
    parser.add_argument("--name", default="mmim")
    parser.add_argument("--backend", default="onnxruntime", choices=BACKENDS)
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--queue-delay-us", type=int, default=2000)
    args = parser.parse_args(argv)
    print(write_triton_repository(args.model_dir, args.repo, args.name, args.backend, args.max_batch_size, args.queue_delay_us))


