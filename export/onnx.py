"""Export an MMIM checkpoint to ONNX and check it against PyTorch.

The graph takes a padded batch of features (token ids and mask, and each
non-verbal stream with its lengths) and returns the score plus the per-clip
diagnostics of `MMIM.diagnostics`. Batch, token and frame axes are dynamic.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from model.mmim import MMIM

log = logging.getLogger("mmim.export")
OPSET = 18
PARITY_TOLERANCE = 1e-4
# BA values are log-densities: on out-of-distribution rows (the ragged parity batch) they
# reach hundreds of nats, where float32 rounding alone is ~1e-4. So, as numpy's allclose,
# |ORT - PyTorch| <= PARITY_TOLERANCE + PARITY_RTOL * |PyTorch|.
PARITY_RTOL = 1e-5
# Percentiles (0-100) are steep functions of their value where training quantiles nearly
# tie: float32 rounding of the value then moves them by a fraction of a point. They are
# shown as whole percentiles, so one point is the tolerance that matters.
PERCENTILE_TOLERANCE = 1.0


class ParityError(RuntimeError):
    """ONNX Runtime and PyTorch disagree beyond the tolerance."""


def input_names(model: MMIM) -> list[str]:
    names = ["input_ids", "attention_mask"]
    for m in model.config.nonverbal:
        names += [m, f"{m}_lengths"]
    return names


def output_names(model: MMIM) -> list[str]:
    mods = model.config.modalities
    diag = [f"ba_text_{m}" for m in model.config.nonverbal]
    diag += [f"cpc_{m}" for m in mods]
    diag += [f"contribution_{m}" for m in mods]
    diag += [f"ba_text_{m}_percentile" for m in model.config.nonverbal]
    diag += [f"cpc_{m}_percentile" for m in mods]
    diag += [f"shapley_{m}" for m in mods] + ["shapley_baseline"]
    diag += [f"interaction_{a}_{b}" for i, a in enumerate(mods) for b in mods[i + 1 :]]
    return ["score", *diag]


class ServingGraph(nn.Module):
    """Positional inputs and a tuple of outputs, in the orders of input_names/output_names."""

    def __init__(self, model: MMIM):
        super().__init__()
        self.model = model
        self.inputs = input_names(model)
        self.outputs = output_names(model)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(**dict(zip(self.inputs, inputs)))
        values = {"score": out["score"], **self.model.diagnostics(out)}
        return tuple(values[name] for name in self.outputs)


def example_inputs(model: MMIM, batch: int = 2, tokens: int = 8, frames: int = 3) -> tuple[torch.Tensor, ...]:
    """Sizes >= 2 on every dynamic axis: a size of 1 would be frozen into the graph."""
    g = torch.Generator().manual_seed(0)
    values = [
        torch.randint(1000, 2000, (batch, tokens), generator=g),
        torch.ones(batch, tokens, dtype=torch.long),
    ]
    for m in model.config.nonverbal:
        dim = getattr(model.config, f"{m}_dim")
        values += [torch.randn(batch, frames, dim, generator=g), torch.full((batch,), frames, dtype=torch.long)]
    return tuple(values)


def dynamic_shapes(model: MMIM) -> tuple:
    batch = torch.export.Dim("batch", min=1, max=1024)
    tokens = torch.export.Dim("tokens", min=2, max=512)
    shapes = [{0: batch, 1: tokens}, {0: batch, 1: tokens}]
    for m in model.config.nonverbal:
        frames = torch.export.Dim(f"{m}_frames", min=1, max=100_000)
        shapes += [{0: batch, 1: frames}, {0: batch}]
    return tuple(shapes)


def export_onnx(model: MMIM, path: Path) -> Path:
    """Export in a fresh process, then check that every dynamic axis stayed dynamic.

    torch 2.13's dynamo exporter keeps state between calls: a second export in one
    process froze the frame axes to the example's size. A spawned process per
    export avoids that, and the check refuses a graph where it happened anyway.
    """
    context = torch.multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        pool.apply(_export_here, (model.eval().cpu(), str(path)))
    frozen = frozen_axes(path, model)
    if frozen:
        raise RuntimeError(f"the export froze dynamic axes {frozen}; export in a fresh process")
    return Path(path)


def _export_here(model: MMIM, path: str) -> None:
    import onnx

    graph = ServingGraph(model).eval()
    with torch.no_grad():
        program = torch.onnx.export(
            graph,
            example_inputs(model),
            dynamo=True,
            input_names=graph.inputs,
            output_names=graph.outputs,
            # forward(*inputs) is one variadic argument: its shapes go in one tuple.
            dynamic_shapes=(dynamic_shapes(model),),
            opset_version=OPSET,
            external_data=False,
            optimize=True,
        )
    proto = program.model_proto
    # The exporter's intermediate shape annotations let ONNX Runtime plan one buffer
    # for the audio and visual LSTMs, which breaks when their frame counts differ.
    # Runtime shape inference needs none of them.
    del proto.graph.value_info[:]
    onnx.save(proto, path)


def frozen_axes(path: Path, model: MMIM) -> list[str]:
    """Inputs whose batch, token or frame axis has a fixed size in the graph."""
    import onnx

    dynamic_axes = {"input_ids": (0, 1), "attention_mask": (0, 1)}
    for m in model.config.nonverbal:
        dynamic_axes[m] = (0, 1)
        dynamic_axes[f"{m}_lengths"] = (0,)
    frozen = []
    for value in onnx.load(str(path), load_external_data=False).graph.input:
        dims = value.type.tensor_type.shape.dim
        frozen += [f"{value.name}[{axis}]" for axis in dynamic_axes.get(value.name, ()) if not dims[axis].dim_param]
    return frozen


def sample_batches(samples, batch_sizes=(1, 3, 32)):
    """Real samples for parity: batches of the given sizes with varied token lengths.

    Sorting by transcript length and taking evenly spaced samples mixes short
    and long utterances (and so padding) into every batch.
    """
    ordered = sorted(samples, key=lambda s: len(s.text))
    batches = []
    for size in batch_sizes:
        # A single sample is the median-length one, not the shortest.
        idx = [len(ordered) // 2] if size == 1 else np.linspace(0, len(ordered) - 1, num=size).round().astype(int)
        batches.append([ordered[i] for i in idx])
    return batches


def ragged_batch(samples, seed: int = 0):
    """Real samples reshaped to stress the graph: each stream gets its own frame
    count (1-6 noisy copies of its vectors), and each modality is absent from
    some rows, so that audio may be longer or shorter than video, or missing."""
    from model.data import Sample

    rng = np.random.default_rng(seed)
    out = []
    for i, s in enumerate(samples):
        feats = {}
        for j, (m, x) in enumerate(sorted(s.features.items())):
            n = 0 if (i + j) % 4 == 3 else 1 + (i * (j + 2)) % 6
            reps = np.resize(x, (max(n, len(x)), x.shape[1]))[:n] if len(x) else x[:0]
            feats[m] = (reps + rng.normal(0, 0.05, reps.shape)).astype(np.float32)
        # Row 2 has no transcript, but every row keeps at least one modality.
        text = "" if i % 5 == 2 and any(len(v) for v in feats.values()) else s.text
        out.append(Sample(s.id, text, s.label, feats))
    return out


def parity_gap(name: str, expected: np.ndarray, got: np.ndarray, tolerance: float = PARITY_TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """(|got - expected|, what is allowed) per element of output `name`. Both NaN is agreement:
    a model without stored quantiles has NaN percentiles."""
    diff = np.where(np.isnan(expected) & np.isnan(got), 0.0, np.abs(expected - got))
    allowed = PERCENTILE_TOLERANCE if name.endswith("_percentile") else tolerance + PARITY_RTOL * np.abs(expected)
    return diff, allowed


def check_parity(model: MMIM, session, collate, batches, tolerance: float = PARITY_TOLERANCE) -> dict[str, float]:
    """Max |ORT - PyTorch| per output over the batches; raises ParityError where an output
    differs by more than tolerance + PARITY_RTOL * |PyTorch| (a percentile: PERCENTILE_TOLERANCE)."""
    graph = ServingGraph(model.eval().cpu())
    worst = {name: 0.0 for name in graph.outputs}
    bad = {}
    for samples in batches:
        batch = collate(samples).model_inputs()
        feed = {name: batch[name].numpy() for name in graph.inputs}
        with torch.no_grad():
            expected = graph(*(batch[name] for name in graph.inputs))
        got = session.run(graph.outputs, feed)
        for name, e, g in zip(graph.outputs, expected, got):
            diff, allowed = parity_gap(name, e.numpy(), g, tolerance)
            worst[name] = max(worst[name], float(diff.max()))
            if not (diff <= allowed).all():
                bad[name] = worst[name]
    if bad:
        raise ParityError(f"ONNX Runtime differs from PyTorch beyond {tolerance:g} + {PARITY_RTOL:g}·|value|: {bad}")
    return worst


def convert_fp16(src: Path, dst: Path) -> Path:
    """fp16 weights and arithmetic for GPU serving; inputs and outputs stay fp32/int64."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return dst
