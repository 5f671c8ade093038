"""The "Timeline" tab: a whole recording cut into utterance-like segments, each scored like a
clip, as a step plot of the score and each modality's Shapley value, and a table."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd

from model.features.media import AUDIO_EXTS, MEDIA_EXTS

from .. import interpret
from ..config import AppConfig
from ..predictor import Predictor
from .common import PathFile, run_safely


def timeline_frames(result: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(series for the line plot: score and each modality's Shapley value at every segment's
    start and end, so the plot is a step; the segment table)."""
    points, rows = [], []
    for seg in result["segments"]:
        if seg["score"] is not None:
            series = {"score": seg["score"]}
            series.update({f"Shapley {m}": interpret.pull(d) for m, d in seg["diagnostics"].items()
                           if interpret.pull(d) is not None})
            for t in (seg["start"], seg["end"]):
                points += [{"time_s": t, "value": v, "series": k} for k, v in series.items()]
        rows.append([seg["start"], seg["end"], seg["text"] or "(no words)",
                     "" if seg["score"] is None else round(seg["score"], 2), seg["label"]])
    return (pd.DataFrame(points, columns=["time_s", "value", "series"]),
            pd.DataFrame(rows, columns=["start (s)", "end (s)", "words", "score", "label"]))


def timeline_headline(result: dict) -> str:
    line = (f"## Overall {result['score']:+.2f} · {result['label']}\n"
            f"{len(result['segments'])} segments over {result['duration_s']:.0f} s (duration-weighted mean).")
    for key, name in (("strongest_positive", "Most positive"), ("strongest_negative", "Most negative")):
        i = result[key]
        if i is not None:
            seg = result["segments"][i]
            line += f"\n\n**{name}**: {seg['start']:.1f}–{seg['end']:.1f} s ({seg['score']:+.2f}) “{seg['text']}”"
    return line


def build_timeline_tab(predictor: Predictor, config: AppConfig) -> None:
    def timeline(path, progress=gr.Progress()):
        if not path:
            raise gr.Error("give a video or an audio file for the timeline", print_exception=False)
        path = getattr(path, "name", path)
        kind = "audio" if Path(path).suffix.lower() in AUDIO_EXTS else "video"
        result = run_safely(predictor.timeline, progress=lambda share, stage: progress(share, desc=stage), **{kind: path})
        points, table = timeline_frames(result)
        return timeline_headline(result), points, table, result

    gr.Markdown(
        f"A whole video or recording (up to {config.max_timeline_s / 60:g} min, "
        f"{config.max_timeline_upload_mb:g} MB) cut into utterance-like segments at the speech "
        "recogniser's sentences and pauses; each segment is scored like a clip. Without speech the "
        "recording is cut into fixed windows."
    )
    timeline_file = PathFile(label="Video or audio", elem_id="timeline_input", file_types=sorted(MEDIA_EXTS))
    timeline_button = gr.Button("Build the timeline", variant="primary", elem_id="timeline_button")
    timeline_summary = gr.Markdown(elem_id="timeline_summary")
    timeline_plot = gr.LinePlot(x="time_s", y="value", color="series", label="Score and Shapley values over time",
                                elem_id="timeline_plot", y_lim=[-3, 3], x_title="seconds")
    timeline_table = gr.Dataframe(label="Segments", elem_id="timeline_table", interactive=False)
    with gr.Accordion("Raw timeline (JSON)", open=False):
        timeline_raw = gr.JSON(elem_id="timeline_json")
    timeline_button.click(timeline, [timeline_file], [timeline_summary, timeline_plot, timeline_table, timeline_raw],
                          api_name="timeline")
