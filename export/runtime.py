"""The inference runtime: one ONNX Runtime session over an exported model folder.

Used by the app and the CLI alike. It
- checks every file against the manifest's sha256 before loading anything;
- refuses a model whose feature spec differs from what the caller's front end makes;
- picks the provider in order CUDA -> CPU by what actually loads (the
  onnxruntime-gpu wheel lists CUDA on machines without it), and logs one line;
- creates its session once, and on CUDA binds inputs and outputs (IO binding).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from model.data.samples import collate_arrays
from model.onnx_session import make_session

from .artifacts import FEATURE_SPEC, VARIANT_FILES, ModelFolderError, default_variant, verify_folder
from .trust import apply_trust

log = logging.getLogger("mmim.runtime")



def spec_differences(ours, theirs, prefix: str = "") -> list[str]:
    """Paths of the feature-spec entries that differ, e.g. ["visual/fps: 5.0 (front end) vs 10.0 (model)"]."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return [d for k in sorted(set(ours) | set(theirs)) for d in spec_differences(ours.get(k), theirs.get(k), f"{prefix}{k}/")]
    return [] if ours == theirs else [f"{prefix.rstrip('/')}: {str(ours)[:40]} (front end) vs {str(theirs)[:40]} (model)"]


def _shaping(spec: dict | None) -> dict:
    """The entries that change the features: package versions are a record, not a contract
    (a numpy patch release must not make a model refuse to load)."""
    return {k: v for k, v in (spec or {}).items() if k != "packages"}


class ServedModel:
    """What every way of serving an exported folder shares: the folder's manifest and
    config, its tokenizer, the training collate, and batched `predict`. Subclasses say
    how a feed is `run` (ONNX Runtime here, Triton in export.triton.client)."""

    def __init__(self, model_dir: str | Path, expected_feature_spec: dict | None = None):
        self.dir = Path(model_dir)
        self.manifest = verify_folder(self.dir)
        self.feature_spec = json.loads((self.dir / FEATURE_SPEC).read_text())
        differences = spec_differences(*(_shaping(s) for s in (expected_feature_spec, self.feature_spec)))
        if expected_feature_spec is not None and differences:
            raise ModelFolderError(
                f"{self.dir} was trained on features that this front end does not make "
                f"({'; '.join(differences[:5])}); retrain or use a matching model"
            )
        self.config = json.loads((self.dir / "config.json").read_text())["model"]
        self.input_names = [i["name"] for i in self.manifest["inputs"]]
        self.output_names = [o["name"] for o in self.manifest["outputs"]]
        self._tokenizer = None

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            # The fast tokenizer alone, from tokenizer.json: AutoTokenizer would import torch,
            # which serving does not need. Same ids (tests/test_export.py).
            from transformers import PreTrainedTokenizerFast

            self._tokenizer = PreTrainedTokenizerFast.from_pretrained(self.dir / "text_encoder")
        return self._tokenizer

    def collate(self, samples) -> dict[str, np.ndarray]:
        """Feed dict for `samples` (model.data.Sample), with the training collate."""
        arrays = collate_arrays(self.tokenizer, self.config["max_text_len"], tuple(self.config["modalities"]), samples)
        return {name: arrays[name] for name in self.input_names}

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def predict(self, samples, batch_size: int = 64, collate_lock=None) -> dict[str, np.ndarray]:
        """Every output for `samples`, in order, run `batch_size` at a time, with the voice and
        the face weighed by how familiar they are (export/trust.py; `run` gives the graph's
        outputs as they are). collate_lock, when given, is held while tokenising (fast
        tokenizers are not thread-safe)."""
        from contextlib import nullcontext

        lock = collate_lock or nullcontext()
        outs = []
        for i in range(0, len(samples), batch_size):
            with lock:
                feed = self.collate(samples[i : i + batch_size])
            outs.append(apply_trust(self.run(feed)))
        return {name: np.concatenate([o[name] for o in outs]) for name in outs[0]} if outs else {}


class OnnxModel(ServedModel):
    """An exported MMIM folder, ready to score batches of features."""

    def __init__(
        self,
        model_dir: str | Path,
        variant: str = "",  # "": the folder's default (export/artifacts.py)
        providers: list[str] | None = None,
        threads: int = 0,
        expected_feature_spec: dict | None = None,
    ):
        super().__init__(model_dir, expected_feature_spec)
        variant = variant or default_variant(self.manifest)
        if variant not in VARIANT_FILES or VARIANT_FILES[variant] not in self.manifest["files"]:
            present = [v for v, f in VARIANT_FILES.items() if f in self.manifest["files"]]
            raise ModelFolderError(f"{self.dir} has no {variant!r} variant; it has {present}")
        self.session = make_session(self.dir / VARIANT_FILES[variant], providers, threads)
        self.provider = self.session.get_providers()[0]
        # The legacy exporter may drop unused inputs: feed what the session asks for.
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        wanted_cuda = "CUDAExecutionProvider" in (providers or ["CUDAExecutionProvider"])
        note = " (CUDA did not load)" if wanted_cuda and self.provider != "CUDAExecutionProvider" else ""
        log.info("ONNX Runtime %s on %s%s: %s", variant, self.provider, note, self.dir)

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = set(self.input_names) - set(feed)
        if missing:
            raise ValueError(f"missing inputs {sorted(missing)}")
        if self.provider == "CUDAExecutionProvider":
            return self._run_bound(feed)
        return dict(zip(self.output_names, self.session.run(self.output_names, {k: feed[k] for k in self.input_names})))

    def _run_bound(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Inputs are copied to the GPU once and outputs stay there until read back,
        # instead of ORT staging each through host buffers per run.
        import onnxruntime as ort

        binding = self.session.io_binding()
        for name in self.input_names:
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(feed[name]), "cuda", 0))
        for name in self.output_names:
            binding.bind_output(name, "cuda", 0)
        self.session.run_with_iobinding(binding)
        return dict(zip(self.output_names, binding.copy_outputs_to_cpu()))
