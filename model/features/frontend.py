"""FrontEnd: media + text in, ClipFeatures out. The app, featurize and ship all use this."""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import numpy as np

from model.features.config import ClipFeatures, FrontEndConfig
from model.features.decode import decode
from model.features.media import SAMPLE_RATE
from model.features.whisper_models import BASE_MODEL_BIN_SHA256
from model.features.errors import FeatureError
from model.features.fer import EXPRESSIONS
from model.features import voice
from model.features.speech import AsrConfig, SpeechAnalysis, Transcriber, Transcript
from model.features import transcript_gate
from model.features.text import prepare_text
from model.features.voice import AUDIO_DIM, AUDIO_NAMES, VOICE_MODEL
from model.features.visual import (BOX_COLUMNS, EXPRESSION_COLUMNS, FACE_PRESENT, CASCADE, VISUAL_DIM, VISUAL_NAMES, DetectorConfig, ExpressionModel,
                                   FACE_SIZE, FaceDetector)

log = logging.getLogger(__name__)
SPEC_VERSION = 1
_PACKAGES = ("av", "ctranslate2", "faster-whisper", "opencv-python-headless", "yuface", "onnxruntime", "onnxruntime-gpu",
             "numpy")
# One Whisper model per process and name, however many FrontEnds are made: it is the
# largest thing the front end loads (about 150 MB for base) and is thread-safe.
_TRANSCRIBERS: dict[str, Transcriber] = {}
_TRANSCRIBERS_LOCK = threading.Lock()
# The speech pass (voice encoding and recognition) runs beside face detection; both
# release the GIL, so on two cores a clip costs about max(speech, faces), not their sum.
_SPEECH_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="speech")


def transcriber(model: str) -> Transcriber:
    with _TRANSCRIBERS_LOCK:
        if model not in _TRANSCRIBERS:
            _TRANSCRIBERS[model] = Transcriber(AsrConfig(model=model))
        return _TRANSCRIBERS[model]


def _versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def mono_16k(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    signal = np.asarray(signal, np.float32)
    return _resample(signal.mean(axis=1) if signal.ndim == 2 else signal, sample_rate)


def _resample(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    if sample_rate == SAMPLE_RATE:
        return signal
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(sample_rate), SAMPLE_RATE)
    return resample_poly(signal, SAMPLE_RATE // g, int(sample_rate) // g).astype(np.float32)


class FrontEnd:
    """Loads the expression ONNX, Haar cascade and (lazily) Whisper once.

    Thread-safe: the cascade is per thread, and onnxruntime sessions and
    CTranslate2 models are safe to share.
    """

    def __init__(self, config: FrontEndConfig | None = None, expression_model: str | Path | None = None,
                 detector: DetectorConfig | None = None):
        self.config = config or FrontEndConfig()
        self.detector = FaceDetector(detector)
        self.expression = ExpressionModel(expression_model) if expression_model else ExpressionModel()

    @property
    def transcriber(self) -> Transcriber:
        return transcriber(self.config.asr_model)

    @property
    def voice(self) -> Transcriber:
        """The Whisper model whose encoder makes the audio stream (the recogniser too, when the same)."""
        return transcriber(VOICE_MODEL)

    def spec(self) -> dict:
        """What the features are: everything that changes them, and nothing else.

        The limits on what is accepted (duration, bytes) and the speech recogniser
        do not change the features of an accepted clip, so they are left out: the
        app may set them differently from training (the models are trained on
        given transcripts). Package versions are kept as a record only.
        """
        c, asr = self.config, AsrConfig()
        return {
            "version": SPEC_VERSION,
            "audio": {"dim": AUDIO_DIM, "names": list(AUDIO_NAMES), "rate_hz": c.audio_rate_hz,
                      "extractor": f"Whisper {VOICE_MODEL} encoder frames (50 Hz) over the speech Silero VAD keeps, "
                                   f"mean-pooled; windows padded to max({asr.min_window_s:g} s, their audio + {asr.window_margin_s:g} s)",
                      "whisper_model": VOICE_MODEL, "whisper_model_bin_sha256": BASE_MODEL_BIN_SHA256,
                      "compute_type": asr.compute_type, "sample_rate": SAMPLE_RATE},
            "visual": {"dim": VISUAL_DIM, "names": list(VISUAL_NAMES), "fps": c.video_fps, "max_side": c.max_side,
                       "face_detector": (CASCADE if self.detector.cfg.backend == "haar"
                                         else f"yuface {_versions().get('yuface', '?')} (libfacedetection CNN)"),
                       "detector": dataclasses.asdict(self.detector.cfg),
                       "expression_classes": list(EXPRESSIONS),
                       "expression_model": {"file": self.expression.path.name, "sha256": self.expression.sha256}},
            "text": {"max_chars": c.max_text_chars},
            "packages": _versions(),
        }

    def warm_up(self) -> None:
        """Every model the front end runs, once, on synthetic input (the first call of an ONNX
        Runtime or CTranslate2 model pays for allocations that later calls reuse)."""
        self.voice.warm_up()
        if self.config.asr and self.config.asr_model != VOICE_MODEL:
            self.transcriber.warm_up()
        blank = np.full((self.config.max_side * 3 // 4, self.config.max_side), 128, np.uint8)
        self.detector.track([blank], True)
        self.expression(np.zeros((1, FACE_SIZE, FACE_SIZE), np.uint8))

    # ---- lower-level pieces (public: export/ship/recipe.py uses them on RAVDESS audio and FER faces) ----

    def audio_features(self, signal: np.ndarray, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, dict]:
        """(T_a, AUDIO_DIM) at audio_rate_hz and quality; T_a = 0 when there is no speech."""
        feats, quality, _ = self.speech_pass(mono_16k(signal, sample_rate), transcribe=False)
        return feats, quality

    def speech_pass(self, signal: np.ndarray, transcribe: bool) -> tuple[np.ndarray, dict, SpeechAnalysis]:
        """One Whisper pass for the voice stream, plus the words when asked for; a second
        pass only when the recogniser is another model than the voice's."""
        same = self.config.asr_model == VOICE_MODEL
        analysis = self.voice.analyse(signal, transcribe=transcribe and same)
        if transcribe and not same:
            other = self.transcriber.analyse(signal, transcribe=True)
            analysis.transcript, analysis.seconds = other.transcript, analysis.seconds + other.seconds
        quality = {"audio_seconds": round(analysis.audio_seconds, 3),
                   # Share of the audio the VAD kept as speech (padded by 0.4 s each side).
                   "voiced_share": round(min(1.0, analysis.speech_seconds / max(analysis.audio_seconds, 1e-9)), 4)}
        if analysis.reason:
            quality["audio_absent_reason"] = analysis.reason
        return voice.pool(analysis.frames, self.config.audio_rate_hz), quality, analysis

    def start_speech(self, signal: np.ndarray, transcribe: bool):
        """speech_pass in a pool thread: a Future of its result. The caller goes on with the frames."""
        return _SPEECH_POOL.submit(self.speech_pass, signal, transcribe)

    def visual_features(self, frames: list[np.ndarray], independent: bool = False) -> tuple[np.ndarray, dict]:
        """frames: HxWx3 uint8 RGB (or HxW grey) of one clip, in order. independent=True for
        unrelated images (e.g. FER faces): every frame gets a full face search, no tracking."""
        out, quality, _ = self._visual(frames, independent)
        return out, quality

    def visual_rows(self, frames: list[np.ndarray], independent: bool = False) -> tuple[np.ndarray, int, dict]:
        """One row per frame (all zeros, face_present 0, where no face was found), the most
        faces seen in one frame, and the stage timings."""
        import cv2

        t0 = time.perf_counter()
        rows = np.zeros((len(frames), VISUAL_DIM), np.float32)
        greys = [f if f.ndim == 2 else cv2.cvtColor(f[..., :3], cv2.COLOR_RGB2GRAY) for f in map(np.asarray, frames)]
        boxes, faces_max = self.detector.track(greys, independent)
        crops, where = [], []
        for i, (grey, b) in enumerate(zip(greys, boxes)):
            if b is not None:
                h, w = grey.shape
                rows[i, BOX_COLUMNS] = ((b.x + b.w / 2) / w, (b.y + b.h / 2) / h, b.w / w, b.h / h)
                rows[i, FACE_PRESENT] = 1.0
                crops.append(self.detector.crop(grey, b))
                where.append(i)
        t1 = time.perf_counter()
        if crops:
            rows[where, EXPRESSION_COLUMNS] = self.expression(np.stack(crops))
        return rows, faces_max, {"face": t1 - t0, "expression": time.perf_counter() - t1}

    def _visual(self, frames: list[np.ndarray], independent: bool = False) -> tuple[np.ndarray, dict, dict]:
        rows, faces_max, timings = self.visual_rows(frames, independent)
        where = np.flatnonzero(rows[:, FACE_PRESENT] == 1.0)
        quality = {"frames": len(frames), "face_frames": len(where),
                   "face_share": round(len(where) / len(frames), 4) if frames else 0.0, "faces_max": faces_max}
        if not frames:
            quality["visual_absent_reason"] = "no video frames"
            rows = rows[:0]
        elif not len(where):
            quality["visual_absent_reason"] = "no face"
            rows = rows[:0]
        return rows, quality, timings

    # ---- the whole clip ----

    def extract(self, *, video=None, audio=None, text=None) -> ClipFeatures:
        c = self.config
        if video is None and audio is None and text is None:
            raise FeatureError("nothing to analyse: give a video, an audio file or some text")
        quality: dict = {}
        timings = {"decode": 0.0, "audio": 0.0, "face": 0.0, "expression": 0.0, "text": 0.0}
        limits = dict(video_fps=c.video_fps, max_side=c.max_side, max_duration_s=c.max_duration_s,
                      max_bytes=c.max_bytes)
        t0 = time.perf_counter()
        clean_text, text_quality = prepare_text(text, c.max_text_chars)
        quality.update(text_quality)
        # The speech pass runs in a pool thread, started as soon as the sound is decoded, while
        # this thread decodes the frames and does the faces. Words are decoded only when no
        # text is given; the VAD decides whether there is speech.
        asr = not clean_text and c.asr
        signal, frames, durations, speech = None, None, [], None

        def start_speech(sound: np.ndarray | None) -> None:
            nonlocal signal, speech
            signal = sound
            if sound is not None:
                speech = self.start_speech(sound, asr)

        if audio is not None:
            da = decode(audio, want_audio=True, want_video=False, **limits)
            durations.append(da.duration_s)
            quality.update(da.info)
            start_speech(da.audio)
        if video is not None:
            dv = decode(video, want_audio=audio is None, want_video=True, on_audio=start_speech, **limits)
            frames, durations = dv.frames, durations + [dv.duration_s]
            quality.update(dv.info)
            if audio is None and speech is None:
                start_speech(dv.audio)  # a single pass: the file had no video stream, or no sound
                if signal is None:
                    quality["audio_absent_reason"] = "the video has no audio track"
            if frames is None:
                quality["visual_absent_reason"] = "the video file has no video stream"
        if durations:
            quality["duration_s"] = round(max(durations), 3)
        timings["decode"] = time.perf_counter() - t0

        if frames is not None:
            visual_feats, q, t = self._visual(frames)
            quality.update(q)
            timings.update(t)
        else:
            visual_feats = np.zeros((0, VISUAL_DIM), np.float32)
            quality.setdefault("visual_absent_reason", "no video given")

        source, transcript = ("given" if clean_text else "absent"), None
        audio_feats = np.zeros((0, AUDIO_DIM), np.float32)
        if speech is not None:
            audio_feats, q, analysis = speech.result()
            quality.update(q)
            timings["audio"] = analysis.encode_seconds
            transcript = analysis.transcript
        if transcript is not None:
            timings["text"] = analysis.seconds - analysis.encode_seconds
            clean_text, source = self._use_transcript(transcript, quality)
        elif not clean_text:
            quality["text_absent_reason"] = ("no text given and speech recognition is off"
                                             if signal is not None and not c.asr else "no text given")
        if signal is None and audio is None and video is not None:
            quality.setdefault("audio_absent_reason", "the video has no audio track")
        elif signal is None:
            quality.setdefault("audio_absent_reason", "no audio given")

        if not clean_text and not len(audio_feats) and not len(visual_feats):
            reasons = "; ".join(f"{m}: {quality.get(f'{m}_absent_reason', 'absent')}"
                                for m in ("text", "audio", "visual"))
            raise FeatureError(f"nothing usable in the input ({reasons}); give a clip with a visible face or "
                               "speech, or some text")
        return ClipFeatures(text=clean_text, text_source=source, audio=audio_feats, visual=visual_feats,
                            quality=quality, timings=timings, transcript=transcript)

    def _use_transcript(self, transcript: Transcript, quality: dict) -> tuple[str, str]:
        """(text for the model, its source); the reasons and the language go into quality."""
        quality["asr_model"] = transcript.model
        quality["asr_language"] = transcript.language
        if transcript.language_probability is not None:
            quality["asr_language_probability"] = round(transcript.language_probability, 4)
        if not transcript.text:
            quality["text_absent_reason"] = f"speech recognition: {transcript.reason}"
            return "", "absent"
        text, unscored, measured = transcript_gate.check(transcript, self.config.gate)
        quality["asr_gate"] = {k: v if not isinstance(v, float) else round(v, 4) for k, v in measured.items()}
        if unscored:  # keep the transcript for the user; score the voice and the face only
            quality["asr_transcript"] = transcript.text
            quality["text_absent_reason"] = unscored
            return "", "absent"
        return prepare_text(text, self.config.max_text_chars)[0], "automatic"
