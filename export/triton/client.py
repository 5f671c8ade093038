"""Query an MMIM model served by Triton, with the same collate and outputs as OnnxModel.

    from export.triton.client import TritonModel
    model = TritonModel("weights/mmim-clip", url="127.0.0.1:8000")
    out = model.predict(samples)            # the dict OnnxModel.predict gives
    out = model.run(model.collate(samples)) # the dict OnnxModel.run gives

The exported folder supplies the tokenizer, the config and the input and output names;
Triton supplies the scores. Per-sample scalars travel as [batch, 1] and come back as
[batch], as the graph gives them.

Triton's dynamic batcher merges only requests of equal shape on the onnxruntime
flavour: `pad_tokens` pads token ids to a fixed length and `pad_frames` pads every
non-verbal stream to a fixed frame count, so that equal-shape requests batch. The
python flavour pads and merges ragged requests itself.
"""
from __future__ import annotations

import numpy as np

from export.runtime import ServedModel

TRITON_DTYPES = {np.dtype(np.int64): "INT64", np.dtype(np.float32): "FP32", np.dtype(np.float16): "FP16",
                 np.dtype(np.int32): "INT32"}


class TritonError(RuntimeError):
    """The server could not be reached or refused the request."""


def pad_axis1(array: np.ndarray, length: int, value=0) -> np.ndarray:
    if array.shape[1] >= length:
        return array
    widths = [(0, 0), (0, length - array.shape[1])] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, widths, constant_values=value)


class TritonModel(ServedModel):
    def __init__(self, model_dir, url: str = "127.0.0.1:8000", name: str = "mmim", pad_tokens: int = 0,
                 pad_frames: int = 0, timeout_s: float = 60.0, expected_feature_spec: dict | None = None):
        import tritonclient.http as http

        super().__init__(model_dir, expected_feature_spec)
        self.url, self.name = url, name
        self.pad_tokens, self.pad_frames = pad_tokens, pad_frames
        self._http = http
        self.client = http.InferenceServerClient(url, connection_timeout=timeout_s, network_timeout=timeout_s)
        self.scalars = {s["name"] for s in self.manifest["inputs"] + self.manifest["outputs"] if len(s["shape"]) == 1}

    def collate(self, samples) -> dict[str, np.ndarray]:
        feed = super().collate(samples)
        if self.pad_tokens:
            pad_id = self.tokenizer.pad_token_id or 0
            feed["input_ids"] = pad_axis1(feed["input_ids"], self.pad_tokens, pad_id)
            feed["attention_mask"] = pad_axis1(feed["attention_mask"], self.pad_tokens, 0)
        if self.pad_frames:
            for name, value in feed.items():
                if value.ndim == 3:  # (batch, frames, dim): the non-verbal streams
                    feed[name] = pad_axis1(value, self.pad_frames, 0)
        return feed

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from tritonclient.utils import InferenceServerException

        inputs = []
        for name in self.input_names:
            value = np.ascontiguousarray(feed[name])
            if name in self.scalars:
                value = value.reshape(len(value), 1)
            tensor = self._http.InferInput(name, list(value.shape), TRITON_DTYPES[value.dtype])
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        outputs = [self._http.InferRequestedOutput(name) for name in self.output_names]
        try:
            result = self.client.infer(self.name, inputs, outputs=outputs)
        except (InferenceServerException, OSError) as error:
            raise TritonError(f"Triton at {self.url} ({self.name}): {error}") from error
        got = {name: result.as_numpy(name) for name in self.output_names}
        return {name: (v.reshape(-1) if name in self.scalars else v) for name, v in got.items()}

    def statistics(self) -> dict:
        """Triton's counters for this model: requests (inference_count) and executions."""
        stats = self.client.get_inference_statistics(self.name)["model_stats"][0]
        return {"inference_count": int(stats.get("inference_count", 0)), "execution_count": int(stats.get("execution_count", 0))}

    def close(self) -> None:
        self.client.close()
