"""PyTorch eager vs ONNX Runtime on the same real inputs.

    python -m export.bench runs/mosi-std/full/seed0 exported/mosi-std --runs 30

Both sides compute the same thing (score and diagnostics) on the same feed,
with the same number of threads. Reported: median latency over `runs` timed
runs after warm-up, at batch 1 and 32, and the ratio eager / ORT, for every
variant in the folder that the provider supports.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import torch

from model.checkpoint import load_checkpoint
from model.data import Collator, load_splits

from .onnx import ServingGraph, sample_batches
from .runtime import OnnxModel


def times_ms(fn, runs: int, warmup: int = 3, synchronize=None) -> list[float]:
    """Milliseconds of each of `runs` calls of fn() after `warmup` untimed ones. With
    `synchronize` (CUDA runs asynchronously), a timing ends when the device is done."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        if synchronize:
            synchronize()
        times.append(1000 * (time.perf_counter() - start))
    return times


def median_ms(fn, runs: int, warmup: int = 3) -> float:
    return statistics.median(times_ms(fn, runs, warmup))


def benchmark(ckpt_dir, model_dir, runs: int = 30, threads: int = 0, batch_sizes=(1, 32), providers=None, data_dir=None) -> dict:
    if threads:
        torch.set_num_threads(threads)
    model, tokenizer = load_checkpoint(ckpt_dir)
    graph = ServingGraph(model).eval()
    config = json.loads((Path(ckpt_dir) / "config.json").read_text())
    samples = load_splits(config["train"]["benchmark"], data_dir or config["train"]["data_dir"], model.config.context)["test"]
    collate = Collator(tokenizer, model.config.max_text_len, model.config.modalities)
    manifest = json.loads((Path(model_dir) / "manifest.json").read_text())
    sessions = {v: OnnxModel(model_dir, v, providers=providers, threads=threads or torch.get_num_threads()) for v in manifest["variants"]}
    results = {"device": next(iter(sessions.values())).provider, "threads": threads or torch.get_num_threads(), "runs": runs, "batches": {}}
    for samples_b in sample_batches(samples, batch_sizes):
        inputs = collate(samples_b).model_inputs()
        tensors = [inputs[n] for n in graph.inputs]
        feed = {n: inputs[n].numpy() for n in graph.inputs}

        def eager():
            with torch.no_grad():
                graph(*tensors)

        row = {"pytorch_eager_ms": median_ms(eager, runs)}
        for variant, session in sessions.items():
            if variant == "fp16" and session.provider == "CPUExecutionProvider":
                continue  # fp16 is the GPU variant; ORT's CPU kernels for it are not the fast path
            row[f"ort_{variant}_ms"] = median_ms(lambda: session.run(feed), runs)
            row[f"speedup_{variant}"] = row["pytorch_eager_ms"] / row[f"ort_{variant}_ms"]
        results["batches"][str(len(samples_b))] = row
    return results


def shapley_cost(ckpt_dir, runs: int = 30, batch_sizes=(1, 32), data_dir=None) -> dict:
    """What the exact Shapley values add: median ms of the whole serving graph (forward and
    every diagnostic) vs the coalition pass alone, PyTorch eager, same inputs."""
    model, tokenizer = load_checkpoint(ckpt_dir)
    graph = ServingGraph(model).eval()
    config = json.loads((Path(ckpt_dir) / "config.json").read_text())
    samples = load_splits(config["train"]["benchmark"], data_dir or config["train"]["data_dir"], model.config.context)["test"]
    collate = Collator(tokenizer, model.config.max_text_len, model.config.modalities)
    out = {}
    for samples_b in sample_batches(samples, batch_sizes):
        inputs = collate(samples_b).model_inputs()
        tensors = [inputs[n] for n in graph.inputs]
        with torch.no_grad():
            forward = model(**inputs)

            def coalitions():
                values = model.coalition_scores(forward)
                return model.shapley_map @ values, model.interaction_map @ values

            whole = median_ms(lambda: graph(*tensors), runs)
            shapley = median_ms(coalitions, runs)
        out[str(len(samples_b))] = {"graph_ms": whole, "shapley_ms": shapley, "shapley_share": shapley / whole}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m export.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("model_dir")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    results = benchmark(args.checkpoint, args.model_dir, args.runs, args.threads, data_dir=args.data_dir)
    results["shapley_cost"] = shapley_cost(args.checkpoint, args.runs, data_dir=args.data_dir)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
