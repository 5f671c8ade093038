"""Export an MMIM checkpoint for serving.

    python -m export runs/mosi-std/full/seed0 --out exported/mosi-std
    python -m export CKPT --out DIR --variants int8,fp16 --evaluate --triton triton_repo
    python -m export.triton DIR --repo triton_repo --backend python   # from an exported folder

Writes model.onnx (+ variants), the tokenizer, config, feature spec and a
manifest with sha256 of every file. The export checks itself against PyTorch
on real test samples at batch sizes 1, 3 and 32 and fails (exit 1) if any
output differs by more than 1e-4.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from .onnx import ParityError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a model.train run folder")
    parser.add_argument("--out", required=True, help="the model folder to write")
    parser.add_argument("--variants", default="", help="extra variants: int8 (CPU), fp16 (GPU)")
    parser.add_argument("--data-dir", default=None, help="MOSI folder for the parity samples (default: the checkpoint's)")
    parser.add_argument("--evaluate", action="store_true", help="score every variant on the test split")
    parser.add_argument("--triton", metavar="DIR", help="also write a Triton Inference Server model repository")
    parser.add_argument("--triton-name", default="mmim")
    parser.add_argument("--triton-backend", default="onnxruntime", choices=("onnxruntime", "python"),
                        help="onnxruntime: NVIDIA's container; python: ONNX Runtime inside the python backend "
                             "(export/triton/serve.sh)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from .build import build_model_folder

    try:
        manifest = build_model_folder(
            args.checkpoint, args.out, tuple(v for v in args.variants.split(",") if v), args.data_dir, args.evaluate
        )
    except ParityError as error:
        logging.getLogger("mmim.export").error("export failed: %s", error)
        sys.exit(1)
    if args.triton:
        from .triton import write_triton_repository

        write_triton_repository(args.out, args.triton, args.triton_name, args.triton_backend)
    print(json.dumps({k: manifest[k] for k in ("variants", "parity") if k in manifest} | {"variant_test_metrics": manifest.get("variant_test_metrics")}, indent=2))


if __name__ == "__main__":
    main()
