"""Triton python-backend model: the exported MMIM graph on ONNX Runtime, with pad-and-merge.

Copied as `<repo>/<name>/1/model.py` by `export.triton.write_triton_repository(...,
backend="python")` and run by Triton's python backend stub inside the serving venv
(export/triton/requirements.txt), so it imports nothing from this project.

Why pad-and-merge: Triton's dynamic batcher hands this model several requests at once
(their inputs are marked `allow_ragged_batch`), but requests differ in token and frame
counts. Each request's inputs are padded to the longest of the group (tokens with the
pad id and a zero attention mask; frames with zeros beyond their length, which the
graph never reads), concatenated, run once and split back. Padding leaves every output
unchanged up to float rounding (checked against `OnnxModel.run` to 1e-5 in the tests).
"""
from __future__ import annotations

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils


def _pad_to(array: np.ndarray, length: int, value) -> np.ndarray:
    """Pad axis 1 of `array` to `length` with `value`."""
    missing = length - array.shape[1]
    if missing <= 0:
        return array
    widths = [(0, 0), (0, missing)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, widths, constant_values=value)


def merge(feeds: list[dict[str, np.ndarray]], pad_values: dict[str, float]) -> dict[str, np.ndarray]:
    """One feed from several: inputs with a sequence axis are padded to the longest first."""
    merged = {}
    for name in feeds[0]:
        arrays = [f[name] for f in feeds]
        if arrays[0].ndim >= 2:
            longest = max(a.shape[1] for a in arrays)
            arrays = [_pad_to(a, longest, pad_values.get(name, 0)) for a in arrays]
        merged[name] = np.concatenate(arrays, axis=0)
    return merged


class TritonPythonModel:
    def initialize(self, args):
        import onnxruntime as ort

        config = json.loads(args["model_config"])
        parameters = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(parameters.get("intra_op_threads", "1"))
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o["name"] for o in config["output"]]
        self.pad_values = {"input_ids": int(parameters.get("pad_token_id", "0"))}
        # Per-sample scalars (lengths) travel as [1] per row; the graph takes them as [batch].
        self.scalar_inputs = {i["name"] for i in config["input"] if list(i["dims"]) == [1]}

    def _feed(self, request) -> dict[str, np.ndarray]:
        feed = {}
        for name in self.input_names:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                raise ValueError(f"missing input {name!r}")
            value = tensor.as_numpy()
            feed[name] = value.reshape(-1) if name in self.scalar_inputs else value
        return feed

    def execute(self, requests):
        feeds, responses = [], [None] * len(requests)
        for i, request in enumerate(requests):
            try:
                feeds.append((i, self._feed(request)))
            except Exception as error:  # one bad request must not fail the others in its batch
                responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error)))
        if feeds:
            try:
                merged = merge([f for _, f in feeds], self.pad_values)
                outputs = dict(zip(self.output_names, self.session.run(self.output_names, merged)))
                start = 0
                for i, feed in feeds:
                    rows = len(feed["input_ids"])
                    tensors = [pb_utils.Tensor(name, np.ascontiguousarray(value[start : start + rows].reshape(rows, -1)))
                               for name, value in outputs.items()]
                    responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
                    start += rows
            except Exception as error:
                for i, _ in feeds:
                    responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error)))
        return responses
