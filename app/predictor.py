"""One clip (text, audio, video in any subset) -> score, label, diagnostics, flags, timings.

No Gradio here: the UI, the CLI (`python -m app.predict`) and the batch job all
call `Predictor.predict`. The front end and the ONNX session are created once;
`predict` is safe to call from several threads at once.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path

import numpy as np

from export.runtime import OnnxModel
from model.features import FeatureError

from . import interpret
from .config import AppConfig

log = logging.getLogger("mmim.app")
MODALITIES = ("text", "audio", "visual")
class Predictor:
    """The exported model plus the feature front end it was trained on."""

    def __init__(self, model_dir: str | Path | None = None, config: AppConfig | None = None, *, frontend=None, providers=None):
        self.config = config or AppConfig()
        model_dir = Path(model_dir or self.config.model_dir)
        if frontend is None:
            from model.features import FrontEnd, FrontEndConfig

            frontend = FrontEnd(
                FrontEndConfig(
                    max_duration_s=self.config.max_duration_s,
                    max_bytes=self.config.max_upload_bytes,
                    asr=self.config.asr,
                    asr_model=self.config.asr_model,
                )
            )
        self.frontend = frontend
        if self.config.asr:
            # Fail at start-up, not on the first clip without text: an unknown name or an
            # incomplete directory raises WhisperModelError here. The model loads lazily.
            from model.features.whisper_models import resolve

            resolve(self.config.asr_model)
        # Checks the manifest, and refuses a model trained on other features, before loading anything.
        self.model = OnnxModel(
            model_dir, self.config.variant, providers=providers, threads=self.config.threads,
            expected_feature_spec=frontend.spec(),
        )
        self.modalities = tuple(self.model.config["modalities"])
        # Previous segments read with each timeline segment: the operator's choice, else the model's training.
        self.context = self.config.context if self.config.context >= 0 else int(self.model.config.get("context", 0))
        # K = bank + the clip itself: CPC estimates never exceed log K.
        self.cpc_bound = float(math.log(self.model.config.get("diagnostic_bank", 127) + 1))
        # Fast tokenizers are not safe to call from several threads at once ("Already
        # borrowed"); tokenising is microseconds, so a lock costs nothing measurable.
        self._collate_lock = threading.Lock()
        if self.config.warm_up:
            self.warm_up()

    def warm_up(self) -> float:
        """Every model once on synthetic input: the front end's, then the graph on a clip with
        words, a voice and a face. Seconds taken."""
        from model.data import Sample

        started = time.perf_counter()
        self.frontend.warm_up()
        rng = np.random.default_rng(0)
        streams = {m: rng.standard_normal((8, self.model.config[f"{m}_dim"])).astype(np.float32)
                   for m in self.modalities if m != "text"}
        self.model.predict([Sample("warm-up", "a short sentence to warm up", 0.0, streams)], collate_lock=self._collate_lock)
        return time.perf_counter() - started

    def info(self) -> dict:
        return {"model_dir": str(self.model.dir), "provider": self.model.provider, "modalities": list(self.modalities),
                "feature_spec": self.model.feature_spec.get("name") or f"front end v{self.model.feature_spec.get('version')}"}

    def predict(self, text: str | None = None, audio: str | Path | None = None, video: str | Path | None = None) -> dict:
        """Raises FeatureError for anything the caller can fix (no input, bad file, too long...)."""
        started = time.perf_counter()
        text = text if text and text.strip() else None
        features = self.frontend.extract(video=video, audio=audio, text=text)
        return self.predict_features(features, started)

    def predict_features(self, features, started: float | None = None) -> dict:
        """Score features already extracted (model.features.ClipFeatures)."""
        started = time.perf_counter() if started is None else started
        self._check_usable(features)
        t0 = time.perf_counter()
        out = self._run([features])[0]
        return self._result(features, out, time.perf_counter() - t0, started)

    def timeline(self, video: str | Path | None = None, audio: str | Path | None = None, progress=None) -> dict:
        """A whole recording (up to config.max_timeline_s) as a sentiment timeline: one result
        per utterance-like segment, batched through ONNX Runtime, plus a duration-weighted
        overall score and the strongest positive and negative segments."""
        from model.features.long_clip import extract_long

        started = time.perf_counter()
        long = extract_long(self.frontend, video=video, audio=audio, max_duration_s=self.config.max_timeline_s,
                            max_bytes=self.config.max_timeline_upload_bytes, progress=progress)
        usable = [i for i, f in enumerate(long.clips) if self._usable(f)]
        if not usable:
            raise FeatureError("nothing this model can use was found in any part of the recording "
                               "(no speech, no visible face); give a recording with speech or a face")
        from model.data.context import Segment, previous_texts

        before = previous_texts([Segment("recording", "", (seg.start,), f.text) for seg, f in zip(long.segments, long.clips)],
                                self.context)
        t0 = time.perf_counter()
        outs = dict(zip(usable, self._run([long.clips[i] for i in usable], [before[i] for i in usable])))
        model_s = time.perf_counter() - t0
        rows = []
        for i, (seg, features) in enumerate(zip(long.segments, long.clips)):
            row = {"start": round(seg.start, 3), "end": round(seg.end, 3), "source": seg.source, "text": features.text,
                   "words": [{"word": w.word, "start": w.start, "end": w.end} for w in seg.words]}
            if i in outs:
                row.update(self._result(features, outs[i], model_s / len(usable), started))
                row.pop("asr"), row.pop("timings")
            else:
                row.update(score=None, label="no data", flags=["no speech and no face in this segment"])
            rows.append(row)
        scored = [r for r in rows if r["score"] is not None]
        weights = np.array([r["end"] - r["start"] for r in scored])
        scores = np.array([r["score"] for r in scored])
        overall = float((weights * scores).sum() / max(weights.sum(), 1e-9))
        top, bottom = int(np.argmax(scores)), int(np.argmin(scores))
        return {
            "duration_s": round(long.duration_s, 3),
            "context_segments": self.context,
            "score": round(overall, 6), "label": interpret.label(overall),
            "strongest_positive": rows.index(scored[top]) if scores[top] > 0 else None,
            "strongest_negative": rows.index(scored[bottom]) if scores[bottom] < 0 else None,
            "segments": rows,
            "quality": _jsonable(long.quality),
            "transcript": long.transcript.text if long.transcript is not None else "",
            "timings": {**{k: round(v, 3) for k, v in long.timings.items()}, "model": round(model_s, 4),
                        "total": round(time.perf_counter() - started, 3)},
        }

    @staticmethod
    def _present(features) -> dict[str, bool]:
        return {"text": bool(features.text.strip()), "audio": len(features.audio) > 0, "visual": len(features.visual) > 0}

    def _usable(self, features) -> bool:
        """Whether the clip has any modality this model reads."""
        present = self._present(features)
        return any(present[m] for m in self.modalities)

    def _check_usable(self, features) -> None:
        if not self._usable(features):
            reasons = "; ".join(f"{m}: {features.quality.get(f'{m}_absent_reason', 'absent')}" for m in self.modalities)
            raise FeatureError(f"nothing this model can use was found in the input ({reasons}); give text, speech or a visible face")

    def _run(self, clips: list, contexts: list[list[str]] | None = None) -> list[dict]:
        """One batched ONNX run; a dict of outputs per clip. contexts: per clip, the words of
        the segments before it, most recent first."""
        samples = [f.to_sample(f"clip{i}") for i, f in enumerate(clips)]
        for sample, context in zip(samples, contexts or []):
            sample.context = tuple(context)
        outs = self.model.predict(samples, batch_size=64, collate_lock=self._collate_lock)
        return [{name: value[i] for name, value in outs.items()} for i in range(len(clips))]

    def _result(self, features, out: dict, model_s: float, started: float) -> dict:
        present = self._present(features)
        score = float(out["score"])
        diagnostics = {m: self._diagnostics(m, out, present) for m in self.modalities}
        interactions = {
            f"{a}×{b}": _number(out.get(f"interaction_{a}_{b}")) if present[a] and present[b] else interpret.ABSENT
            for i, a in enumerate(self.modalities) for b in self.modalities[i + 1 :]
        }
        flags = interpret.flags(diagnostics, features.quality, features.text_source)
        flags += [f"{m} was given but this model does not use it" for m in MODALITIES if m not in self.modalities and present[m]]
        timings = {k: round(float(v), 4) for k, v in features.timings.items()}
        timings["model"] = round(model_s, 4)
        timings["total"] = round(time.perf_counter() - started, 4)
        return {
            "score": round(score, 6),
            # The fusion network's own score, before the voice and the face were weighed by trust.
            "fused_score": _number(out.get("fused_score")),
            "label": interpret.label(score),
            "bin7": interpret.bin7(score),
            "bin7_name": interpret.BIN7[interpret.bin7(score)],
            "diagnostics": diagnostics,
            # Shapley values sum to score - shapley_baseline: the score with every present
            # modality at its training mean.
            "shapley_baseline": _number(out.get("shapley_baseline")),
            "interactions": interactions,
            "cpc_bound": round(self.cpc_bound, 4),
            "summary": interpret.summary(score, diagnostics),
            "flags": flags,
            "quality": _jsonable(features.quality),
            "transcript": features.text,
            "text_source": features.text_source,
            # Segments with word timestamps and the detected language, when the words were recognised.
            "asr": features.transcript.to_dict() if features.transcript is not None else None,
            "timings": timings,
        }

    def _diagnostics(self, m: str, out: dict, present: dict[str, bool]) -> dict:
        """Numbers where they mean something; interpret.ABSENT where the modality (or, for BA,
        the text) is missing. A model exported before an output existed gives None for it."""
        def value(name: str, needs: tuple[str, ...]):
            return _number(out.get(name)) if all(present[n] for n in needs) else interpret.ABSENT

        # BA is text -> m, so it needs both; the text has no BA of its own.
        ba_needs = ("text", m)
        d = {
            "present": present[m],
            "ba": None if m == "text" else value(f"ba_text_{m}", ba_needs),
            "ba_percentile": None if m == "text" else value(f"ba_text_{m}_percentile", ba_needs),
            "cpc": value(f"cpc_{m}", (m,)),
            "cpc_percentile": value(f"cpc_{m}_percentile", (m,)),
            "shapley": value(f"shapley_{m}", (m,)),
            "contribution": value(f"contribution_{m}", (m,)),
            # The share of m's Shapley value the score keeps (export/trust.py); the words are not weighed.
            "trust": None if m == "text" else value(f"trust_{m}", (m,)),
        }
        d["outside_training"] = [k for k in ("ba", "cpc") if interpret.outside_training(d[f"{k}_percentile"])]
        return d


def _number(value):
    """A float rounded for JSON, or None where the model has no such output (or no reference: NaN)."""
    if value is None or not math.isfinite(float(value)):
        return None
    return round(float(value), 6)


def _jsonable(value):
    """Quality figures as plain JSON types (numpy scalars become floats/ints)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value
