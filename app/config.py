"""App settings: one dataclass, the source of the `python -m app` flags."""
from __future__ import annotations

from dataclasses import dataclass

from model.features.speech import DEFAULT_ASR_MODEL

DEFAULT_MODEL_DIR = "weights/mmim-clip"


@dataclass
class AppConfig:
    model_dir: str = DEFAULT_MODEL_DIR
    host: str = "127.0.0.1"  # loopback only unless the operator opens it on purpose
    port: int = 7860
    max_upload_mb: float = 50.0  # per uploaded file (Gradio rejects larger ones before they reach us)
    max_duration_s: float = 60.0  # longer clips are refused by the front end
    max_timeline_s: float = 600.0  # the timeline (whole videos) takes recordings up to this long
    max_timeline_upload_mb: float = 500.0  # per file in the timeline (a 10-minute 720p video is 100-300 MB)
    concurrency: int = 2  # requests processed at once; the rest wait in the queue
    cache_minutes: float = 60.0  # uploads and results older than this are deleted from Gradio's cache
    queue_size: int = 64  # requests allowed to wait; beyond that new ones are refused
    max_batch_files: int = 50  # clips per batch request (files or zip members)
    max_zip_mb: float = 200.0  # total uncompressed size of a batch zip
    variant: str = ""  # "": the folder's default graph; or fp32 | int8 | fp16
    threads: int = 0  # ONNX Runtime intra-op threads; 0 = one per usable core
    asr: bool = True  # transcribe the audio when no text is given
    # Run every model once at start-up on synthetic input, so the first user does not pay for
    # first-run allocations (about twice a warm call's time without it).
    warm_up: bool = True
    asr_model: str = DEFAULT_ASR_MODEL  # Whisper: tiny.en | base | a local CTranslate2 directory
    # Timeline: the words of up to K previous segments go with each segment's words, as the
    # model was trained (model/data/context.py). -1: the model's own setting; 0: none.
    context: int = -1

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    @property
    def max_timeline_upload_bytes(self) -> int:
        return int(self.max_timeline_upload_mb * 2**20)
