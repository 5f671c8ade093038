"""ONNX export: parity with PyTorch, dynamic axes, manifest and feature-spec checks, Triton config."""
import json
import re
import shutil

import numpy as np
import pytest
import torch

from export.artifacts import ModelFolderError
from export.build import build_model_folder
from export.onnx import PERCENTILE_TOLERANCE, ParityError, ServingGraph, check_parity, export_onnx, frozen_axes, ragged_batch, sample_batches
from export.runtime import OnnxModel
from export.trust import apply_trust
from model.onnx_session import make_session
from export.triton import write_triton_repository
from model.checkpoint import load_checkpoint
from model.config import ModelConfig, TrainConfig
from model.data import Collator, Sample, load_mosi
from model.train import train


@pytest.fixture(scope="module")
def exported(tmp_path_factory, mosi_dir, tiny_bert):
    root = tmp_path_factory.mktemp("export")
    cfg = TrainConfig(
        benchmark="mosi-ctx", data_dir=str(mosi_dir), out_dir=str(root / "ckpt"), limit_train=64, epochs=1,
        batch_size=16, num_threads=1, progress=False, model=ModelConfig(text_encoder=tiny_bert),
    )
    train(cfg)
    manifest = build_model_folder(root / "ckpt", root / "onnx", variants=("int8",))
    return root / "ckpt", root / "onnx", manifest


def varied_frames(samples, seed=0):
    """Real MOSI vectors stretched to 1-5 noisy frames, to exercise the frame axes."""
    rng = np.random.default_rng(seed)
    out = []
    for i, s in enumerate(samples):
        n = 1 + i % 5
        feats = {m: (np.repeat(x, n, 0) + rng.normal(0, 0.1, (n, x.shape[1]))).astype(np.float32) for m, x in s.features.items()}
        out.append(Sample(s.id, s.text, s.label, feats))
    return out


def atol(name: str) -> float:
    return PERCENTILE_TOLERANCE if name.endswith("_percentile") else 1e-4


def test_export_checks_parity_on_real_samples(exported):
    _, _, manifest = exported
    parity = manifest["parity"]
    assert parity["batch_sizes"] == [1, 3, 32]
    assert set(parity["max_abs_diff"]) == {
        "score", "ba_text_audio", "ba_text_visual", "cpc_text", "cpc_audio", "cpc_visual",
        "contribution_text", "contribution_audio", "contribution_visual",
        "ba_text_audio_percentile", "ba_text_visual_percentile", "cpc_text_percentile", "cpc_audio_percentile",
        "cpc_visual_percentile", "shapley_text", "shapley_audio", "shapley_visual", "shapley_baseline",
        "interaction_text_audio", "interaction_text_visual", "interaction_audio_visual",
    }
    assert max(v for k, v in parity["max_abs_diff"].items() if not k.endswith("_percentile")) <= 1e-4
    assert max(v for k, v in parity["max_abs_diff"].items() if k.endswith("_percentile")) <= PERCENTILE_TOLERANCE


def test_one_file_serves_batch_1_and_3_with_varied_frames(exported, mosi_dir):
    ckpt, onnx_dir, _ = exported
    runtime = OnnxModel(onnx_dir, providers=["CPUExecutionProvider"])
    model, tokenizer = load_checkpoint(ckpt)
    samples = varied_frames(load_mosi(mosi_dir, "mosi-ctx")["test"][:3])
    batch3 = runtime.predict(samples)
    assert batch3["score"].shape == (3,)
    singles = [runtime.predict([s]) for s in samples]
    for name in batch3:
        np.testing.assert_allclose(batch3[name], np.concatenate([r[name] for r in singles]), atol=atol(name))
    # And against PyTorch on the same varied-length batch.
    graph = ServingGraph(model)
    inputs = Collator(tokenizer, 50, model.config.modalities)(samples).model_inputs()
    assert inputs["audio_lengths"].tolist() == [1, 2, 3]
    with torch.no_grad():
        expected = {k: v.numpy() for k, v in zip(graph.outputs, graph(*(inputs[n] for n in graph.inputs)))}
    # predict weighs the voice and the face by their diagnostics (export/trust.py): the same rule on PyTorch's outputs.
    expected = apply_trust(expected)
    assert set(batch3) == set(expected)
    for name in expected:
        np.testing.assert_allclose(batch3[name], expected[name], atol=atol(name))


def test_ragged_batch_with_absent_rows_matches_pytorch(exported, mosi_dir):
    """Audio longer or shorter than video, and rows missing a modality, in one batch."""
    ckpt, onnx_dir, manifest = exported
    assert manifest["parity"]["ragged_batch"] is True
    model, tokenizer = load_checkpoint(ckpt)
    samples = ragged_batch(load_mosi(mosi_dir, "mosi-ctx")["test"][:12])
    inputs = Collator(tokenizer, 50, model.config.modalities)(samples).model_inputs()
    lengths = np.stack([inputs["audio_lengths"].numpy(), inputs["visual_lengths"].numpy()], 1)
    assert (lengths[:, 0] > lengths[:, 1]).any() and (lengths[:, 0] < lengths[:, 1]).any()
    assert (lengths == 0).any() and (inputs["attention_mask"][:, 0] == 0).any()
    got = OnnxModel(onnx_dir, providers=["CPUExecutionProvider"]).run({n: inputs[n].numpy() for n in ServingGraph(model).inputs})
    graph = ServingGraph(model)
    with torch.no_grad():
        expected = dict(zip(graph.outputs, graph(*(inputs[n] for n in graph.inputs))))
    for name in graph.outputs:
        np.testing.assert_allclose(got[name], expected[name].numpy(), atol=atol(name))
    absent_audio = inputs["audio_lengths"].numpy() == 0
    assert (got["contribution_audio"][absent_audio] == 0).all()


@pytest.mark.slow  # a second export
def test_a_second_export_in_one_process_keeps_dynamic_axes(exported, tmp_path):
    ckpt, _, _ = exported
    model, _ = load_checkpoint(ckpt)
    path = export_onnx(model, tmp_path / "again.onnx")
    assert frozen_axes(path, model) == []


def test_parity_failure_is_loud(exported, mosi_dir):
    ckpt, onnx_dir, _ = exported
    model, tokenizer = load_checkpoint(ckpt)
    with torch.no_grad():
        model.fusion.out.bias += 1e-3  # the ONNX graph no longer matches this model
    session = make_session(onnx_dir / "model.onnx", ["CPUExecutionProvider"])
    batches = sample_batches(load_mosi(mosi_dir, "mosi-ctx")["test"], (1, 3))
    with pytest.raises(ParityError, match="score"):
        check_parity(model, session, Collator(tokenizer, 50, model.config.modalities), batches)


def test_manifest_lists_files_specs_and_variants(exported):
    _, onnx_dir, manifest = exported
    assert manifest["opset"] >= 17 and manifest["variants"] == {"fp32": "model.onnx", "int8": "model.int8.onnx"}
    assert {"model.onnx", "model.int8.onnx", "feature_spec.json", "config.json"} <= set(manifest["files"])
    inputs = {s["name"]: s for s in manifest["inputs"]}
    assert inputs["input_ids"]["shape"] == ["batch", "tokens"]
    assert inputs["audio"]["shape"] == ["batch", "audio_frames", 73]
    assert inputs["visual_lengths"]["dtype"] == "int64"
    samples = load_mosi_samples(onnx_dir)
    int8 = OnnxModel(onnx_dir, "int8", providers=["CPUExecutionProvider"]).predict(samples)
    fp32 = OnnxModel(onnx_dir, providers=["CPUExecutionProvider"]).predict(samples)
    assert int8["score"].shape == (2,)
    np.testing.assert_allclose(int8["score"], fp32["score"], atol=0.05)  # quantised, not broken


def load_mosi_samples(onnx_dir):
    spec = json.loads((onnx_dir / "feature_spec.json").read_text())
    rng = np.random.default_rng(0)
    return [Sample(str(i), "fine", 0.0, {m: rng.normal(size=(2, s["dim"])).astype(np.float32) for m, s in spec["streams"].items()}) for i in range(2)]


def test_tampered_or_incomplete_folder_is_refused(exported, tmp_path):
    _, onnx_dir, _ = exported
    copy = tmp_path / "copy"
    shutil.copytree(onnx_dir, copy)
    data = bytearray((copy / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelFolderError, match="sha256"):
        OnnxModel(copy)
    (copy / "model.onnx").unlink()
    with pytest.raises(ModelFolderError, match="missing"):
        OnnxModel(copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(ModelFolderError, match="no manifest"):
        OnnxModel(copy)
    with pytest.raises(ModelFolderError, match="no 'fp16' variant"):
        OnnxModel(onnx_dir, "fp16")


def test_mismatched_feature_spec_is_refused(exported):
    _, onnx_dir, _ = exported
    spec = json.loads((onnx_dir / "feature_spec.json").read_text())
    assert OnnxModel(onnx_dir, expected_feature_spec=spec).feature_spec == spec
    other = {**spec, "name": "egemaps-lld-25"}
    with pytest.raises(ModelFolderError, match="egemaps-lld-25"):
        OnnxModel(onnx_dir, expected_feature_spec=other)


def parse_pbtxt(text: str):
    """A minimal protobuf text-format reader: nested messages, lists and scalars."""
    tokens = re.findall(r'"[^"]*"|[{}\[\]:,]|[^\s{}\[\]:,"]+', text)
    pos = 0

    def value():
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "{":
            return message("}")
        if tok == "[":
            items = []
            while tokens[pos] != "]":
                if tokens[pos] == ",":
                    pos += 1
                    continue
                items.append(value())
            pos += 1
            return items
        if tok.startswith('"'):
            return tok[1:-1]
        return int(tok) if re.fullmatch(r"-?\d+", tok) else tok

    def message(end):
        nonlocal pos
        fields = {}
        while pos < len(tokens) and tokens[pos] != end:
            key = tokens[pos]
            pos += 1
            if tokens[pos] == ":":
                pos += 1
            fields[key] = value()
        pos += 1
        return fields

    return message(None)


def test_triton_config_matches_the_graph(exported, tmp_path):
    _, onnx_dir, manifest = exported
    target = write_triton_repository(onnx_dir, tmp_path / "repo", "mmim")
    assert (target / "1" / "model.onnx").read_bytes() == (onnx_dir / "model.onnx").read_bytes()
    config = parse_pbtxt((target / "config.pbtxt").read_text())
    assert config["name"] == "mmim" and config["platform"] == "onnxruntime_onnx"
    assert config["max_batch_size"] > 0 and "dynamic_batching" in config
    types = {"int64": "TYPE_INT64", "float": "TYPE_FP32"}
    for kind in ("input", "output"):
        declared = {t["name"]: t for t in config[kind]}
        graph = {s["name"]: s for s in manifest[kind + "s"]}
        assert set(declared) == set(graph)
        for name, spec in graph.items():
            assert declared[name]["data_type"] == types[spec["dtype"]]
            per_sample = [d if isinstance(d, int) else -1 for d in spec["shape"][1:]]
            if per_sample:
                assert declared[name]["dims"] == per_sample
            else:
                assert declared[name]["dims"] == [1] and declared[name]["reshape"] == {"shape": []}


def test_an_int8_only_folder_serves_int8_by_default(exported, tmp_path):
    """Where fp32 is too large to ship, the folder keeps int8 alone; every reader of the folder
    (runtime, Triton) takes it as the default graph, and the embedding table is int8 too."""
    import onnx

    from export.build import keep_variants
    from export.triton.repository import write_triton_repository

    _, onnx_dir, _ = exported
    copy = tmp_path / "int8_only"
    shutil.copytree(onnx_dir, copy)
    manifest = keep_variants(copy, ("int8",), variant_check={"note": "kept"})
    assert manifest["variants"] == {"int8": "model.int8.onnx"} and manifest["variant_check"] == {"note": "kept"}
    assert not (copy / "model.onnx").exists() and "model.onnx" not in manifest["files"]
    samples = load_mosi_samples(onnx_dir)
    expected = OnnxModel(onnx_dir, "int8", providers=["CPUExecutionProvider"]).predict(samples)["score"]
    np.testing.assert_array_equal(OnnxModel(copy, providers=["CPUExecutionProvider"]).predict(samples)["score"], expected)
    repo = write_triton_repository(copy, tmp_path / "repo")
    assert (repo / "1" / "model.onnx").read_bytes() == (copy / "model.int8.onnx").read_bytes()
    graph = onnx.load(str(copy / "model.int8.onnx"))
    vocab = {i.name: i for i in graph.graph.initializer if i.dims and i.dims[0] == 30522}
    eight_bit = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    assert vocab and all(i.data_type in eight_bit for i in vocab.values()), "the word embeddings stayed fp32"
    with pytest.raises(ValueError, match="cannot keep"):
        keep_variants(copy, ("fp32",))


def test_serving_collate_equals_the_training_collate(mosi_dir, tiny_bert):
    """Serving tokenises with the fast tokenizer alone (no torch); training with AutoTokenizer.
    Same arrays, with and without context, with absent text and ragged frames."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from model.data import Collator
    from model.data.samples import collate_arrays

    samples = varied_frames(load_mosi(mosi_dir, "mosi-ctx")["test"][:6])
    samples[1].text = ""
    samples[2].context = ("what came before", "and before that")
    modalities = ("text", "audio", "visual")
    training = Collator(AutoTokenizer.from_pretrained(tiny_bert), 50, modalities)(samples)
    serving = collate_arrays(PreTrainedTokenizerFast.from_pretrained(tiny_bert), 50, modalities, samples)
    for name, tensor in vars(training).items():
        np.testing.assert_array_equal(serving[name], tensor.numpy(), err_msg=name)
        assert serving[name].dtype == tensor.numpy().dtype, name
