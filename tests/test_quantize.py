"""The int8 graph: smoothing keeps the function, and makes per-tensor int8 survive outlier
channels; small MatMuls stay fp32; an 8-bit weight-only graph reads back exactly."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.quantize import WIDE_MIN_DIM, quantize_int8, smooth, weight_only_to_fp32, wide_matmuls

D_IN, D_OUT, VOCAB, TOKENS = 256, 512, 1000, 12


def _graph(path, rng) -> None:
    """ids -> embedding (VOCAB x D_IN) -> + x -> wide MatMul (D_IN x D_OUT) -> small MatMul (D_OUT x 16)."""
    table = rng.standard_normal((VOCAB, D_IN)).astype(np.float32) * 0.1
    wide = rng.standard_normal((D_IN, D_OUT)).astype(np.float32) * 0.05
    small = rng.standard_normal((D_OUT, 16)).astype(np.float32) * 0.05
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["emb"], name="embed"),
        helper.make_node("Add", ["emb", "x"], ["h"], name="add"),
        helper.make_node("MatMul", ["h", "wide"], ["y"], name="wide_mm"),
        helper.make_node("MatMul", ["y", "small"], ["z"], name="small_mm"),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, "T"]),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "T", D_IN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "T", D_OUT]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, "T", 16])],
        [numpy_helper.from_array(a, n) for a, n in ((table, "table"), (wide, "wide"), (small, "small"))],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), str(path))


def _feed(rng, outlier: float = 100.0) -> dict[str, np.ndarray]:
    """Activations with two outlier channels and a loud first token, as MPNet's have."""
    x = rng.standard_normal((1, TOKENS, D_IN)).astype(np.float32)
    x[..., [7, 100]] *= outlier
    x[:, 0] *= outlier / 10
    return {"ids": rng.integers(0, VOCAB, (1, TOKENS)), "x": x}


def _run(path_or_model, feed) -> list[np.ndarray]:
    data = path_or_model.SerializeToString() if isinstance(path_or_model, onnx.ModelProto) else str(path_or_model)
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(["y", "z"], feed)


def _relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.linalg.norm(got - expected) / np.linalg.norm(expected))


def test_smoothing_computes_the_same_function(tmp_path):
    rng = np.random.default_rng(0)
    _graph(tmp_path / "f32.onnx", rng)
    model = onnx.load(str(tmp_path / "f32.onnx"))
    feed = _feed(rng)
    ranges = {"h": np.abs(feed["x"]).max(axis=(0, 1)) + 1.0}
    smooth(model, wide_matmuls(model), ranges, alpha=0.75)
    assert [n.name for n in wide_matmuls(model)] == ["wide_mm"]  # the 512 x 16 MatMul is not wide
    for got, expected in zip(_run(model, feed), _run(tmp_path / "f32.onnx", feed)):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_int8_with_smoothing_survives_outlier_channels(tmp_path):
    """One activation scale for the whole matrix: without smoothing the outlier channels (and
    the loud token) leave the others a handful of levels; with it the error is at least halved."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    rng = np.random.default_rng(1)
    _graph(tmp_path / "f32.onnx", rng)
    calibration = [_feed(rng) for _ in range(8)]
    test = _feed(rng)
    expected = _run(tmp_path / "f32.onnx", test)[0]
    quantize_int8(tmp_path / "f32.onnx", tmp_path / "int8.onnx", calibration)
    quantize_dynamic(str(tmp_path / "f32.onnx"), str(tmp_path / "plain.onnx"), weight_type=QuantType.QInt8,
                     per_channel=True, op_types_to_quantize=["MatMul"], nodes_to_quantize=["wide_mm"])
    smoothed = _relative_error(_run(tmp_path / "int8.onnx", test)[0], expected)
    plain = _relative_error(_run(tmp_path / "plain.onnx", test)[0], expected)
    assert smoothed < 0.03, smoothed
    assert smoothed < plain / 2, (smoothed, plain)


def test_only_wide_matmuls_and_the_embedding_are_quantised(tmp_path):
    rng = np.random.default_rng(2)
    _graph(tmp_path / "f32.onnx", rng)
    quantize_int8(tmp_path / "f32.onnx", tmp_path / "int8.onnx", [_feed(rng)])
    graph = onnx.load(str(tmp_path / "int8.onnx")).graph
    ops = {n.name: n.op_type for n in graph.node}
    assert ops["small_mm"] == "MatMul"
    assert "wide_mm" not in ops or ops["wide_mm"] != "MatMul"
    assert any(op in ("MatMulInteger", "DynamicQuantizeMatMul") for op in ops.values())
    initializers = {i.name: i for i in graph.initializer}
    assert initializers["small"].data_type == TensorProto.FLOAT
    tables = [i for i in graph.initializer if list(i.dims) == [VOCAB, D_IN]]
    assert tables and all(i.data_type in (TensorProto.INT8, TensorProto.UINT8) for i in tables)
    assert D_IN >= WIDE_MIN_DIM


@pytest.mark.parametrize("block_size", [32, 128])
def test_an_8bit_weight_only_graph_reads_back_exactly(tmp_path, block_size):
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    rng = np.random.default_rng(3)
    _graph(tmp_path / "f32.onnx", rng)
    quantizer = MatMulNBitsQuantizer(onnx.load(str(tmp_path / "f32.onnx")), bits=8, block_size=block_size,
                                     is_symmetric=True, nodes_to_include=["wide_mm"], nodes_to_exclude=["small_mm"])
    quantizer.process()
    nbits = quantizer.model.model
    assert [n.op_type for n in nbits.graph.node].count("MatMulNBits") == 1
    back = onnx.ModelProto()
    back.CopyFrom(nbits)
    weight_only_to_fp32(back)
    assert "MatMulNBits" not in {n.op_type for n in back.graph.node}
    feed = _feed(rng, outlier=1.0)
    for got, expected in zip(_run(back, feed), _run(nbits, feed)):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # And it is the 8-bit weight, not the original one: a known rounding away from fp32.
    assert not np.allclose(_run(back, feed)[0], _run(tmp_path / "f32.onnx", feed)[0], rtol=0, atol=1e-7)
