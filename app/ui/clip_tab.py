"""The "One clip" tab: text, audio and video in; the score, the per-modality diagnostics as a
table and two charts, the flags, the transcript and the stage times out."""
from __future__ import annotations

import json
import math
from pathlib import Path

import gradio as gr
import pandas as pd

from .. import interpret
from ..predictor import Predictor
from .common import run_safely

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
API_NAME = "predict"


def _fmt(value, spec: str = "+.3f") -> str:
    if value is None:
        return "n/a"
    return value if isinstance(value, str) else format(value, spec)


def _nats(d: dict, key: str) -> str:
    """Raw nats with the training percentile beside them; out-of-range values say so."""
    value, pct = d.get(key), d.get(f"{key}_percentile")
    text = _fmt(value)
    if isinstance(value, float) and isinstance(pct, float):
        text += f" ({pct:.0f}th pct" + (", outside training" if interpret.outside_training(pct) else "") + ")"
    return text


def diagnostics_table(result: dict) -> pd.DataFrame:
    rows = [
        [m, "yes" if d["present"] else interpret.ABSENT, _nats(d, "ba"), _nats(d, "cpc"), _fmt(d.get("shapley")),
         _fmt(d.get("trust"), ".0%") if m != "text" else "", _fmt(d["contribution"])]
        for m, d in result["diagnostics"].items()
    ]
    return pd.DataFrame(rows, columns=["modality", "present", "BA text→m, nats (training percentile)",
                                       f"CPC fusion→m, nats ≤ {result['cpc_bound']:.2f} (percentile)",
                                       "Shapley (score)", "trust (share of its pull kept)", "leave-one-out (score)"])


def diagnostics_charts(result: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Shapley values (score units) and MI percentiles (0-100) in two charts, since their
    scales differ. Percentiles keep every bar readable where raw nats span hundreds. Only
    real numbers are plotted: an absent modality has no bar."""
    shapley, mi = [], []
    for m, d in result["diagnostics"].items():
        value = interpret.pull(d)
        if value is not None:
            shapley.append({"modality": m, "shapley": value})
        for k in ("ba", "cpc"):
            pct = d.get(f"{k}_percentile")
            if isinstance(pct, float):
                mi.append({"estimate": f"BA text→{m}" if k == "ba" else f"CPC fusion→{m}", "percentile": pct})
    return pd.DataFrame(shapley, columns=["modality", "shapley"]), pd.DataFrame(mi, columns=["estimate", "percentile"])


def shapley_limit(frame: pd.DataFrame) -> list[float]:
    """A symmetric y range that holds every bar: at least ±1, in steps of 0.5."""
    top = float(frame["shapley"].abs().max()) if len(frame) else 0.0
    limit = max(1.0, math.ceil(top * 2) / 2)
    return [-limit, limit]


def headline(result: dict) -> str:
    source = {"given": "given", "automatic": "automatic (speech recogniser)", "absent": "none"}[result["text_source"]]
    return (
        f"## Score {result['score']:+.2f} · {result['label']}\n"
        f"7-class bin **{result['bin7']:+d}** ({result['bin7_name']}) on a scale from −3 to +3. Transcript: {source}."
    )


def load_examples() -> list[list]:
    """[text, audio, video] rows from app/examples/examples.json (written by app.make_examples)."""
    index = EXAMPLES_DIR / "examples.json"
    if not index.is_file():
        return []
    rows = []
    for ex in json.loads(index.read_text()):
        paths = [str(EXAMPLES_DIR / ex[k]) if ex.get(k) else None for k in ("audio", "video")]
        if all(p is None or Path(p).is_file() for p in paths):
            rows.append([ex.get("text") or "", *paths])
    return rows


def build_clip_tab(predictor: Predictor) -> None:
    def analyse(text, audio, video):
        result = run_safely(predictor.predict, text=text or None, audio=audio or None, video=video or None)
        flags = "\n".join(f"- {f}" for f in result["flags"]) or "- all present modalities look fine"
        timings = pd.DataFrame([[k, round(v * 1000, 1)] for k, v in result["timings"].items()], columns=["stage", "ms"])
        transcript = result["transcript"] + (" (automatic)" if result["text_source"] == "automatic" else "")
        shapley, mi = diagnostics_charts(result)
        return (
            headline(result), result["summary"], diagnostics_table(result),
            gr.BarPlot(value=shapley, y_lim=shapley_limit(shapley)), mi,
            flags, transcript, timings, result,
        )

    with gr.Row():
        with gr.Column(scale=1):
            text = gr.Textbox(label="Text (transcript)", lines=3, elem_id="text_input",
                              placeholder="Leave empty to transcribe the audio automatically")
            audio = gr.Audio(label="Audio", sources=["upload", "microphone"], type="filepath", elem_id="audio_input")
            video = gr.Video(label="Video", sources=["upload", "webcam"], elem_id="video_input", height=260)
            button = gr.Button("Analyse", variant="primary", elem_id="analyse_button")
        with gr.Column(scale=1):
            score = gr.Markdown(elem_id="score_output")
            summary = gr.Textbox(label="In plain words", elem_id="summary_output", interactive=False)
            table = gr.Dataframe(label="Per-modality diagnostics", elem_id="diagnostics_output", interactive=False)
            with gr.Row():
                contrib_chart = gr.BarPlot(x="modality", y="shapley", label="Shapley value: share of the score",
                                           elem_id="contribution_chart", sort=None, y_lim=[-1, 1])
                mi_chart = gr.BarPlot(x="estimate", y="percentile", label="MI estimates: percentile among training clips",
                                      elem_id="mi_chart", sort=None, x_label_angle=-30, y_lim=[0, 100])
            flags = gr.Markdown(elem_id="flags_output")
            transcript = gr.Textbox(label="Transcript used", elem_id="transcript_output", interactive=False)
            timings = gr.Dataframe(label="Processing time per stage", elem_id="timings_output", interactive=False)
            with gr.Accordion("Raw result (JSON)", open=False):
                raw = gr.JSON(elem_id="json_output")
    button.click(
        analyse, [text, audio, video], [score, summary, table, contrib_chart, mi_chart, flags, transcript, timings, raw],
        api_name=API_NAME,
    )
    examples = load_examples()
    if examples:
        gr.Examples(examples, [text, audio, video], label="Examples (real RAVDESS voices, FER faces, MOSI/SST sentences)")
