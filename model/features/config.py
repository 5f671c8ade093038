"""Front-end configuration and the per-clip result."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from model.features.speech import DEFAULT_ASR_MODEL
from model.features.transcript_gate import GateConfig

if TYPE_CHECKING:
    from model.features.speech import Transcript


@dataclass
class FrontEndConfig:
    audio_rate_hz: float = 10.0        # Whisper encoder frames (50 Hz) mean-pooled to this rate
    video_fps: float = 5.0             # frames sampled per second
    max_duration_s: float = 120.0      # longer clips -> FeatureError
    max_bytes: int = 200 * 2**20       # larger files -> FeatureError
    max_side: int = 640                # frames resized so the long side is <= this before face detection
    max_text_chars: int = 2000         # longer text is truncated (noted in quality), never an error
    asr: bool = True                   # transcribe when no text is given and audio is present
    asr_model: str = DEFAULT_ASR_MODEL  # Whisper: tiny.en | base | a local CTranslate2 directory
    gate: GateConfig = field(default_factory=GateConfig)  # when an automatic transcript's words are scored

    def __post_init__(self) -> None:
        if isinstance(self.gate, dict):  # from asdict(), across process boundaries
            self.gate = GateConfig(**self.gate)


@dataclass
class ClipFeatures:
    text: str                          # "" = text absent
    text_source: str                   # "given" | "automatic" | "absent"
    audio: np.ndarray                  # (T_a, AUDIO_DIM) float32; T_a == 0 means audio absent
    visual: np.ndarray                 # (T_v, VISUAL_DIM) float32; T_v == 0 means visual absent
    quality: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    # Speech recognition's segments and word timestamps (seconds from the clip start);
    # None when the text was given or nothing was transcribed.
    transcript: "Transcript | None" = None

    def to_sample(self, id: str = "", label: float = 0.0):
        from model.data import Sample

        return Sample(id=id, text=self.text, label=float(label),
                      features={"audio": self.audio, "visual": self.visual})
