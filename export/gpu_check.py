"""One command for a machine with an NVIDIA GPU: CUDA parity and GPU speed of a model.

    python -m export.gpu_check RUN_OR_MODEL_DIR --out DIR [--runs 200]

RUN_OR_MODEL_DIR is a training run (a checkpoint: it is exported first, with an fp16
variant, and PyTorch eager is timed too) or an exported model folder (its fp16 variant
is made if missing). On CUDA it
- checks parity of ONNX Runtime CUDA against ONNX Runtime CPU, fp32 and fp16, on the
  same inputs (fp32 within the export's tolerance; fp16 reported as measured);
- times ONNX Runtime CUDA with IO binding: batch-1 p50/p95 and batch-64 throughput;
- times PyTorch CUDA eager on the same feeds (runs only);
and writes DIR/gpu_check.json and DIR/gpu_check.md. Without CUDA it says so in both
files, and times ONNX Runtime on the CPU instead, so the command itself is checked
anywhere. Sized to finish within 5 minutes.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import numpy as np

from model.features.visual import EXPRESSION_MODEL
from model.onnx_session import make_session

from .artifacts import MANIFEST, VARIANT_FILES, ModelFolderError, write_manifest
from .bench import times_ms
from .onnx import convert_fp16, parity_gap
from .runtime import OnnxModel
from .samples import serving_samples

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
# fp16 is reported, not gated: its error depends on the model's value ranges.
FP16_SCORE_TOLERANCE = 0.05


def cuda_status() -> dict:
    """Whether ONNX Runtime really runs on CUDA here (the GPU wheel lists CUDA either way)."""
    import onnxruntime as ort

    import torch

    status = {"ort_providers": ort.get_available_providers(), "ort_cuda": False,
              "torch_cuda": torch.cuda.is_available(), "device_name": None}
    if status["torch_cuda"]:
        status["device_name"] = torch.cuda.get_device_name(0)
    if CUDA in status["ort_providers"]:
        probe = EXPRESSION_MODEL  # any small graph shows whether CUDA loads
        if probe.is_file():
            status["ort_cuda"] = make_session(probe, [CUDA, CPU]).get_providers()[0] == CUDA
    return status


def prepare(source: Path, out: Path) -> tuple[Path, Path | None]:
    """(exported folder with an fp16 variant, checkpoint or None)."""
    if (source / MANIFEST).is_file():
        manifest = json.loads((source / MANIFEST).read_text())
        if "fp16" in manifest["variants"]:
            return source, None
        if "fp32" not in manifest["variants"]:
            raise ModelFolderError(f"{source} ships no fp32 graph to convert to fp16 ({sorted(manifest['variants'])}); "
                                   "give the training run it was built from")
        target = out / "model"
        shutil.copytree(source, target, dirs_exist_ok=True)
        convert_fp16(target / VARIANT_FILES["fp32"], target / VARIANT_FILES["fp16"])
        fields = {k: v for k, v in manifest.items() if k != "files"}
        fields["variants"] = {**manifest["variants"], "fp16": VARIANT_FILES["fp16"]}
        write_manifest(target, **fields)
        return target, None
    if (source / "model.safetensors").is_file():
        from .build import build_model_folder

        build_model_folder(source, out / "model", variants=("fp16",))  # parity on its own data
        return out / "model", source
    raise SystemExit(f"{source} is neither an exported model folder (no {MANIFEST}) nor a training run (no model.safetensors)")


def timings(run, runs: int, synchronize=None) -> dict:
    """p50/p95 ms of `run()` after warm-up."""
    times = times_ms(run, runs, warmup=5, synchronize=synchronize)
    return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95)), "runs": runs}


def speed(run_one, run_many, batch: int, runs: int, synchronize=None) -> dict:
    one = timings(run_one, runs, synchronize)
    many = timings(run_many, max(3, runs // 10), synchronize)
    return {"batch1_p50_ms": one["p50_ms"], "batch1_p95_ms": one["p95_ms"],
            f"batch{batch}_p50_ms": many["p50_ms"], f"batch{batch}_samples_per_s": batch * 1000 / many["p50_ms"]}


def parity(reference: dict[str, np.ndarray], got: dict[str, np.ndarray], fp16: bool) -> dict:
    worst, passed = {}, True
    for name, want in reference.items():
        diff, allowed = parity_gap(name, want, got[name])
        worst[name] = float(diff.max())
        if fp16:
            if name == "score":
                passed &= worst[name] <= FP16_SCORE_TOLERANCE
        else:
            passed &= bool((diff <= allowed).all())
    return {"max_abs_diff": worst, "passed": bool(passed)}


def check(source: str | Path, out: str | Path, runs: int = 200, batch: int = 64, data_dir: str = "",
          provider: str = CUDA) -> dict:
    """The report. `provider` other than CUDA runs the whole GPU path on that provider
    (PyTorch on the CPU): how the command is tested on machines without a GPU."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    status = cuda_status()
    on_cuda = provider == CUDA
    label = "cuda" if on_cuda else provider.removesuffix("ExecutionProvider").lower()
    model_dir, ckpt = prepare(Path(source), out)
    samples = serving_samples(model_dir, max(batch, 32), data_dir)
    cpu = OnnxModel(model_dir, "fp32", providers=[CPU])
    report = {"model_dir": str(model_dir), "checkpoint": str(ckpt) if ckpt else None, "cuda": status, "batch": batch,
              "provider": provider}
    one, many = cpu.collate(samples[:1]), cpu.collate(samples[:batch])
    if on_cuda and not status["ort_cuda"]:
        report["note"] = "CUDA is not available to ONNX Runtime here: no parity or GPU figures; CPU timings instead"
        runs = min(runs, 30)
        report["cpu_fp32"] = speed(lambda: cpu.run(one), lambda: cpu.run(many), batch, runs)
        return report
    reference = cpu.predict(samples, batch_size=16)
    report["parity"], report["speed"] = {}, {}
    for variant in ("fp32", "fp16"):
        gpu = OnnxModel(model_dir, variant, providers=[provider, CPU])
        if gpu.provider != provider:
            raise SystemExit(f"ONNX Runtime would not run the {variant} model on {provider}")
        report["parity"][variant] = parity(reference, gpu.predict(samples, batch_size=16), fp16=variant == "fp16")
        report["speed"][f"ort_{label}_{variant}"] = speed(lambda: gpu.run(one), lambda: gpu.run(many), batch, runs)
    if on_cuda:
        report["speed"]["ort_cpu_fp32"] = speed(lambda: cpu.run(one), lambda: cpu.run(many), batch, max(10, runs // 10))
    if ckpt is not None and (status["torch_cuda"] or not on_cuda):
        report["speed"][f"pytorch_{label}_eager"] = eager_speed(ckpt, cpu, samples, batch, runs, "cuda" if on_cuda else "cpu")
    return report


def eager_speed(ckpt: Path, runtime: OnnxModel, samples, batch: int, runs: int, device: str) -> dict:
    import torch

    from model.checkpoint import load_checkpoint

    from .onnx import ServingGraph

    model, _ = load_checkpoint(ckpt, device=device)
    graph = ServingGraph(model).eval()

    def feed(rows):
        tensors = runtime.collate(rows)
        return [torch.from_numpy(tensors[n]).to(device) for n in graph.inputs]

    one, many = feed(samples[:1]), feed(samples[:batch])
    # CUDA runs asynchronously: a timing ends when the device is done.
    synchronize = torch.cuda.synchronize if device == "cuda" else None
    with torch.no_grad():
        return speed(lambda: graph(*one), lambda: graph(*many), batch, runs, synchronize)


def markdown(report: dict) -> str:
    lines = [f"# GPU check: {report['model_dir']}", ""]
    status = report["cuda"]
    key = f"batch{report['batch']}_samples_per_s"
    lines.append(f"- device: {status['device_name'] or 'no CUDA device'}; ONNX Runtime CUDA: {status['ort_cuda']}; "
                 f"PyTorch CUDA: {status['torch_cuda']}")
    if "note" in report:
        cpu = report["cpu_fp32"]
        lines += [f"- {report['note']}", "", "| runtime | batch 1 p50 | batch 1 p95 | batch %d samples/s |" % report["batch"],
                  "|---|---|---|---|",
                  f"| ORT CPU fp32 | {cpu['batch1_p50_ms']:.2f} ms | {cpu['batch1_p95_ms']:.2f} ms | "
                  f"{cpu[key]:.0f} |"]
        return "\n".join(lines) + "\n"
    lines += ["", "| parity vs ORT CPU fp32 | passed | max |diff| score | max |diff| any output |", "|---|---|---|---|"]
    for variant, p in report["parity"].items():
        lines.append(f"| ORT {report['provider'].removesuffix('ExecutionProvider')} {variant} | {p['passed']} | {p['max_abs_diff']['score']:.2e} | {max(p['max_abs_diff'].values()):.2e} |")
    lines += ["", f"| runtime | batch 1 p50 | batch 1 p95 | batch {report['batch']} samples/s |", "|---|---|---|---|"]
    for name, s in report["speed"].items():
        lines.append(f"| {name} | {s['batch1_p50_ms']:.2f} ms | {s['batch1_p95_ms']:.2f} ms | "
                     f"{s[key]:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m export.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a training run folder or an exported model folder")
    parser.add_argument("--out", required=True)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--data-dir", default="", help="MOSI folder (default: the shared data folder's mosi/)")
    parser.add_argument("--provider", default=CUDA, help="run the GPU path on another ONNX Runtime provider "
                        "(CPUExecutionProvider: to test this command without a GPU)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    report = check(args.source, args.out, args.runs, args.batch, args.data_dir, args.provider)
    out = Path(args.out)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
