"""The Gradio Blocks UI over one shared `Predictor`: one builder per tab.

Every upload component has an elem_id (browser tests target `#ID input[type=file]`).
User-caused problems (model.features.FeatureError) become gr.Error with the same
message; anything else is logged and reported as an internal error, so a bad
request never takes the server down.
"""
from __future__ import annotations

import gradio as gr

from ..config import AppConfig
from ..predictor import Predictor
from .about_tab import build_about_tab
from .batch_tab import build_batch_tab
from .clip_tab import EXAMPLES_DIR, build_clip_tab, load_examples
from .timeline_tab import build_timeline_tab

__all__ = ["EXAMPLES_DIR", "build_ui", "load_examples"]


def build_ui(predictor: Predictor, config: AppConfig) -> gr.Blocks:
    limits = (
        f"Limits: {config.max_upload_mb:g} MB per file, {config.max_duration_s:g} s per clip, "
        f"{config.max_batch_files} clips per batch; {config.concurrency} requests at a time."
    )
    # Gradio keeps every upload and returned file in its cache: sweep it, so the disk use of a
    # long-running server stays bounded by what arrived in the last cache_minutes.
    age_s = int(config.cache_minutes * 60)
    with gr.Blocks(title="MMIM multimodal sentiment", delete_cache=(max(60, min(600, age_s)), age_s)) as demo:
        gr.Markdown(
            "# MMIM multimodal sentiment\n"
            "Give any of text, audio and video (at least one). A video's own sound track is its audio; "
            "without text, the speech recogniser writes the transcript. " + limits
        )
        with gr.Tab("One clip"):
            build_clip_tab(predictor)
        with gr.Tab("Timeline"):
            build_timeline_tab(predictor, config)
        with gr.Tab("Batch"):
            build_batch_tab(predictor, config)
        with gr.Tab("About"):
            build_about_tab(predictor, config)
    return demo
