"""8-bit graphs for CPU serving: int8 arithmetic in the transformer, with smoothed activations.

ONNX Runtime's dynamic int8 MatMul quantises each activation matrix with one scale. MPNet's
activations carry a few outlier channels (the GELU outputs reach 48x their median channel),
so one scale leaves the other channels a handful of levels: text-alone MAE on MOSI went from
0.669 to 1.11. SmoothQuant (Xiao et al., ICML 2023) moves part of each channel's range into the
weights, x W = (x / s) (s W), with s = max|x|^alpha / max|W|^(1 - alpha) per input channel,
measured on calibration inputs; and each row (token) is brought to range 1 at run time and
scaled back after the MatMul, so that one scale per matrix acts as one per token.

Weight-only 8 bits (MatMulNBits) was accurate but no faster than fp32 on AVX2 and 8x slower at
ORT's default accuracy level; dynamic int8 after smoothing runs at about half the fp32 time
(export/README.md, "int8").
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

# A Gather over a table at least this large is an embedding, quantised with the weights
# (MPNet's word embeddings are 94 MB in fp32); smaller ones are indexing and stay as they are.
EMBEDDING_ELEMENTS = 100_000
# MatMul weights whose both sides are at least this wide (a transformer's) are quantised;
# the small layers of the heads, the MI terms and the Shapley map stay fp32.
WIDE_MIN_DIM = 256
# Chosen on MOSI and SST validation text with the shipped reader (export/README.md, "int8").
SMOOTHING_ALPHA = 0.5
# Training clips the activation ranges are measured on, evenly spaced over the split.
CALIBRATION_CLIPS = 256


def wide_matmuls(model) -> list:
    """The MatMul nodes whose weight (an initializer) is WIDE_MIN_DIM or more on both sides."""
    shapes = {i.name: tuple(i.dims) for i in model.graph.initializer}
    return [n for n in model.graph.node if n.op_type == "MatMul" and len(shapes.get(n.input[1], ())) == 2
            and min(shapes[n.input[1]]) >= WIDE_MIN_DIM]


def activation_ranges(model, names: list[str], feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """max |value| per last-axis channel of each named tensor over the feeds (one run each)."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in names:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    # Unfused, so that every probed tensor still exists.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    ranges = {}
    for feed in feeds:
        for name, value in zip(names, session.run(names, {k: feed[k] for k in inputs})):
            channel_max = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
            ranges[name] = np.maximum(ranges[name], channel_max) if name in ranges else channel_max
    return ranges


def smooth(model, nodes: list, ranges: dict[str, np.ndarray], alpha: float = SMOOTHING_ALPHA) -> None:
    """Rewrite each MatMul x W as ((x / s) / r) (s W) r, in place; the graph computes the same function.

    s, per input channel, is SmoothQuant's: it moves part of each channel's range into the
    weight. r = max |x / s| over each row (token), computed at run time, brings every row to
    range 1 before the MatMul, so the int8 MatMul's one scale per matrix acts as one per token.
    """
    from onnx import helper, numpy_helper

    initializers = {i.name: i for i in model.graph.initializer}
    model.graph.initializer.extend([numpy_helper.from_array(np.array([-1], np.int64), "smooth_last_axis"),
                                    numpy_helper.from_array(np.array(1e-6, np.float32), "smooth_eps")])
    before, after = {}, {}
    for node in nodes:
        weight = numpy_helper.to_array(initializers[node.input[1]])
        x_max = np.maximum(ranges[node.input[0]], 1e-5)
        w_max = np.maximum(np.abs(weight).max(axis=1), 1e-5)
        s = (x_max**alpha / w_max ** (1 - alpha)).astype(np.float32)
        initializers[node.input[1]].CopyFrom(numpy_helper.from_array((weight * s[:, None]).astype(np.float32), node.input[1]))
        name = node.name
        model.graph.initializer.append(numpy_helper.from_array((1 / s).astype(np.float32), f"{name}_inv_smooth"))
        before[name] = [
            helper.make_node("Mul", [node.input[0], f"{name}_inv_smooth"], [f"{name}_smoothed"], name=f"{name}_smooth"),
            helper.make_node("Abs", [f"{name}_smoothed"], [f"{name}_abs"], name=f"{name}_abs"),
            helper.make_node("ReduceMax", [f"{name}_abs", "smooth_last_axis"], [f"{name}_row_max"], keepdims=1, name=f"{name}_row_max"),
            helper.make_node("Add", [f"{name}_row_max", "smooth_eps"], [f"{name}_row_scale"], name=f"{name}_row_scale"),
            helper.make_node("Div", [f"{name}_smoothed", f"{name}_row_scale"], [f"{name}_rows"], name=f"{name}_rows"),
        ]
        after[name] = helper.make_node("Mul", [f"{name}_unscaled", f"{name}_row_scale"], [node.output[0]], name=f"{name}_unscale")
        node.input[0], node.output[0] = f"{name}_rows", f"{name}_unscaled"
    # The new nodes go just around their MatMul, which keeps the node list topologically sorted.
    ordered = []
    for node in model.graph.node:
        ordered += before.get(node.name, []) + [node] + ([after[node.name]] if node.name in after else [])
    del model.graph.node[:]
    model.graph.node.extend(ordered)


def quantize_int8(src: Path, dst: Path, calibration: list[dict[str, np.ndarray]], alpha: float = SMOOTHING_ALPHA) -> Path:
    """The CPU graph: the wide MatMuls smoothed on `calibration` feeds (real inputs, one clip
    each, so that padding does not enter the ranges), then dynamic int8 with per-channel weights;
    the embedding tables in 8 bits. Everything else stays fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(src))
    # The exporter's intermediate shape annotations trip the quantiser's own shape
    # inference (it re-infers them, and one LSTM state shape disagrees); drop them.
    del model.graph.value_info[:]
    _untranspose_gemm_weights(model)
    uses = Counter(name for node in model.graph.node for name in node.input)
    # A weight shared by several MatMuls cannot take one smoothing per MatMul: it stays fp32.
    matmuls = [n for n in wide_matmuls(model) if uses[n.input[1]] == 1]
    smooth(model, matmuls, activation_ranges(model, sorted({n.input[0] for n in matmuls}), calibration), alpha)
    tables = {i.name for i in model.graph.initializer if len(i.dims) == 2 and i.dims[0] * i.dims[1] >= EMBEDDING_ELEMENTS}
    gathers = [n.name for n in model.graph.node if n.op_type == "Gather" and n.input[0] in tables]
    smoothed = Path(dst).with_suffix(".smoothed.onnx")
    onnx.save(model, str(smoothed))
    try:
        quantize_dynamic(
            str(smoothed), str(dst), weight_type=QuantType.QInt8, per_channel=True,
            op_types_to_quantize=["MatMul", "Gather"], nodes_to_quantize=[n.name for n in matmuls] + gathers,
            # Without the annotations some inputs have no inferred type; they are float.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        smoothed.unlink(missing_ok=True)
    return Path(dst)


def weight_only_to_fp32(model) -> None:
    """Replace each 8-bit MatMulNBits (symmetric, no zero points: the earlier int8 format) by a
    MatMul over its dequantised weight, in place. The result computes what the 8-bit graph did,
    so a folder shipped in that format can be re-quantised without its fp32 checkpoint."""
    from onnx import helper, numpy_helper

    initializers = {i.name: i for i in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        if node.op_type != "MatMulNBits":
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs["bits"] != 8 or len(node.input) != 3:
            raise ValueError(f"{node.name}: only symmetric 8-bit MatMulNBits without zero points is read")
        k, n = attrs["K"], attrs["N"]
        # Stored as (N, blocks, block_size) uint8 with an implicit zero point of 128, one scale per block.
        q = numpy_helper.to_array(initializers[node.input[1]]).astype(np.float32)
        scales = numpy_helper.to_array(initializers[node.input[2]]).reshape(n, -1, 1)
        weight = ((q - 128) * scales).reshape(n, -1)[:, :k].T.copy()
        model.graph.initializer.append(numpy_helper.from_array(weight, f"{node.input[1]}_fp32"))
        nodes.append(helper.make_node("MatMul", [node.input[0], f"{node.input[1]}_fp32"], list(node.output), name=node.name))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {name for node in model.graph.node for name in node.input}
    kept = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)


def _untranspose_gemm_weights(model) -> None:
    """Store Gemm weights pre-transposed (transB = 0).

    The quantiser rewrites each Gemm as MatMul + Add and transposes its weight
    then; a weight the exporter deduplicated across several Gemms is transposed
    for the first only, which leaves an invalid graph. Doing it here, once per
    weight, for every Gemm that reads it, avoids that.
    """
    import onnx
    from onnx import numpy_helper

    initializers = {init.name: init for init in model.graph.initializer}
    done = set()
    for node in model.graph.node:
        if node.op_type != "Gemm" or node.input[1] not in initializers:
            continue
        attrs = {a.name: a for a in node.attribute}
        if "transB" not in attrs or attrs["transB"].i == 0:
            continue
        name = node.input[1]
        if name not in done:
            init = initializers[name]
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).T.copy(), name))
            done.add(name)
        attrs["transB"].i = 0
    onnx.checker.check_model(model)
