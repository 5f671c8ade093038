"""Triton serving: the real bundled tritonserver, queried from the main environment.

The server runs from the serving venv (`bash export/triton/serve.sh --setup`, which
.ci/run does), because its python backend needs numpy < 2. Without that venv the
server tests are skipped, with a warning that says so.
"""
from __future__ import annotations

import os
import socket
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

from export.runtime import OnnxModel
from export.triton import write_triton_repository
from model.data.featurized import load_featurized
from tests.conftest import REPO

pytestmark = pytest.mark.slow  # the Triton server

VENV = Path(os.environ.get("MMIM_TRITON_VENV", REPO / ".venv-triton"))
# Triton vs ONNX Runtime, per output: the same graph on the same kernels, so only padding
# and merging (tokens and frames the graph masks out) may move the last float bits.
TOLERANCE = 1e-5


def serving_venv_ready() -> bool:
    python = VENV / "bin" / "python"
    return python.is_file() and subprocess.run([python, "-c", "import pytriton, onnxruntime, numpy"],
                                               capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def server(tmp_path_factory, clip_model_dir):
    if not serving_venv_ready():
        message = (f"TRITON SERVER TESTS SKIPPED: no serving venv at {VENV}; "
                   "build it with `bash export/triton/serve.sh --setup`")
        warnings.warn(message)
        pytest.skip(message)
    from export.triton.bench import TritonServer

    repo = write_triton_repository(clip_model_dir, tmp_path_factory.mktemp("triton") / "repo", backend="python").parent
    with TritonServer(repo, venv=str(VENV)) as running:
        yield running


@pytest.fixture(scope="module")
def samples(clip_dataset):
    data = load_featurized(clip_dataset["dataset"])
    return data["train"] + data["valid"] + data["test"]


def close(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(np.abs(a - b) <= TOLERANCE * (1 + np.abs(b))))


def test_python_flavour_repository(clip_model_dir, tmp_path):
    target = write_triton_repository(clip_model_dir, tmp_path / "repo", backend="python")
    config = (target / "config.pbtxt").read_text()
    assert 'backend: "python"' in config and "platform" not in config
    # Ragged requests may be batched together: model.py pads and merges them.
    assert config.count("allow_ragged_batch: true") == config.split("output [")[0].count("name:") - 1
    assert (target / "1" / "model.py").read_text() == (REPO / "export" / "triton" / "python_model.py").read_text()
    assert (target / "1" / "model.onnx").read_bytes() == (clip_model_dir / "model.onnx").read_bytes()
    with pytest.raises(ValueError, match="unknown Triton backend"):
        write_triton_repository(clip_model_dir, tmp_path / "other", backend="tensorrt")


def test_triton_outputs_equal_onnx_runtime(server, clip_model_dir, samples):
    from export.triton.client import TritonModel

    want = OnnxModel(clip_model_dir, providers=["CPUExecutionProvider"], threads=1).predict(samples, batch_size=5)
    model = TritonModel(clip_model_dir, server.url)
    got = model.predict(samples, batch_size=5)
    assert set(got) == set(want) and len(got["score"]) == len(samples)
    for name in want:
        assert got[name].shape == want[name].shape, name
        assert close(got[name], want[name]), (name, float(np.max(np.abs(got[name] - want[name]))))
    # Fixed-size padding, which lets NVIDIA's onnxruntime flavour batch, changes nothing either.
    padded = TritonModel(clip_model_dir, server.url, pad_tokens=50, pad_frames=40).predict(samples, batch_size=5)
    assert all(close(padded[n], want[n]) for n in want)
    model.close()


def test_bad_request_gets_an_error_and_the_server_stays_up(server, clip_model_dir, samples):
    from export.triton.client import TritonError, TritonModel

    model = TritonModel(clip_model_dir, server.url)
    feed = model.collate(samples[:2])
    feed["audio"] = feed["audio"][:, :, :5]  # wrong feature width
    with pytest.raises(TritonError):
        model.run(feed)
    assert model.predict(samples[:3])["score"].shape == (3,)


def test_loopback_load_merges_ragged_requests(server, clip_model_dir, samples):
    from export.triton.bench import load_test

    want = OnnxModel(clip_model_dir, providers=["CPUExecutionProvider"], threads=1).predict(samples, batch_size=1)
    report = load_test(clip_model_dir, server.url, samples, clients=8, requests=20, expected=want)
    assert report["ok"] == 160 and report["failures"] == 0, report["first_failure"]
    # Requests of different token and frame counts were merged into shared executions...
    assert report["mean_requests_per_execution"] > 1.0, report
    # ...and each still got its own answer.
    worst = {n: d / (1 + float(np.max(np.abs(want[n])))) for n, d in report["max_difference"].items()}
    assert max(worst.values()) <= TOLERANCE, worst


def test_server_stops_by_pid(tmp_path, clip_model_dir):
    if not serving_venv_ready():
        pytest.skip(f"TRITON SERVER TESTS SKIPPED: no serving venv at {VENV}")
    from export.triton.bench import TritonServer

    repo = write_triton_repository(clip_model_dir, tmp_path / "repo", backend="python").parent
    with TritonServer(repo, venv=str(VENV)) as running:
        pid, port = running.process.pid, running.http_port
        assert Path(f"/proc/{pid}/exe").resolve().name == "tritonserver"  # the script exec'd the server
    assert running.process.poll() is not None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
