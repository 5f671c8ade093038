"""The Gradio Blocks UI over one shared `Predictor`.

Every upload component has an elem_id (browser tests target `#ID input[type=file]`).
User-caused problems (model.features.FeatureError) become gr.Error with the same
message; anything else is logged and reported as an internal error, so a bad
request never takes the server down.
"""
from __future__ import annotations

import json
import logging
import math
import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from model.features import FeatureError

from . import interpret
from .batch import AUDIO_EXTS, VIDEO_EXTS, run_batch
from .config import AppConfig
from .predictor import Predictor

log = logging.getLogger("mmim.app")
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
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
         _fmt(d["contribution"])]
        for m, d in result["diagnostics"].items()
    ]
    return pd.DataFrame(rows, columns=["modality", "present", "BA text→m, nats (training percentile)",
                                       f"CPC fusion→m, nats ≤ {result['cpc_bound']:.2f} (percentile)",
                                       "Shapley (score)", "leave-one-out (score)"])


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


def _run_safely(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except FeatureError as e:
        raise gr.Error(str(e), print_exception=False) from None
    except gr.Error:
        raise
    except Exception as e:  # the queue worker survives; the user sees a short message
        log.exception("request failed")
        raise gr.Error(f"internal error ({type(e).__name__}); the server logged the details. Try another input.") from None


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


def api_snippet(config: AppConfig) -> str:
    return f'''```python
from gradio_client import Client, handle_file
client = Client("http://{config.host}:{config.port}/")
headline, summary, table, contributions, mi, flags, transcript, timings, result = client.predict(
    "I loved every minute of it",              # text ("" = none: the recogniser transcribes the audio)
    handle_file("clip.wav"),                   # audio file or None
    handle_file("clip.mp4"),                   # video file or None (its sound is the audio if no audio is given)
    api_name="/{API_NAME}",
)
print(result["score"], result["label"], result["diagnostics"])
```'''


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


def build_ui(predictor: Predictor, config: AppConfig) -> gr.Blocks:
    def timeline(path, progress=gr.Progress()):
        if not path:
            raise gr.Error("give a video or an audio file for the timeline", print_exception=False)
        path = getattr(path, "name", path)
        kind = "audio" if Path(path).suffix.lower() in AUDIO_EXTS else "video"
        result = _run_safely(predictor.timeline, progress=lambda share, stage: progress(share, desc=stage), **{kind: path})
        points, table = timeline_frames(result)
        return timeline_headline(result), points, table, result

    def analyse(text, audio, video):
        result = _run_safely(predictor.predict, text=text or None, audio=audio or None, video=video or None)
        flags = "\n".join(f"- {f}" for f in result["flags"]) or "- all present modalities look fine"
        timings = pd.DataFrame([[k, round(v * 1000, 1)] for k, v in result["timings"].items()], columns=["stage", "ms"])
        transcript = result["transcript"] + (" (automatic)" if result["text_source"] == "automatic" else "")
        shapley, mi = diagnostics_charts(result)
        return (
            headline(result), result["summary"], diagnostics_table(result),
            gr.BarPlot(value=shapley, y_lim=shapley_limit(shapley)), mi,
            flags, transcript, timings, result,
        )

    def batch(files, transcripts, per_segment=False, progress=gr.Progress()):
        files = [getattr(f, "name", f) for f in files or []]
        out_dir = Path(tempfile.mkdtemp(prefix="mmim-results-"))

        def report(i, n, name):
            progress((i, n), desc=f"{name} ({i}/{n})", unit="clips")

        path, rows = _run_safely(run_batch, predictor, files, transcripts, out_dir, config, report, bool(per_segment))
        columns = ["file", "segment_start", "segment_end"] if per_segment else ["file"]
        preview = pd.DataFrame(rows)[[*columns, "score", "label", "bin7", "text_source", "error"]]
        return str(path), preview

    limits = (
        f"Limits: {config.max_upload_mb:g} MB per file, {config.max_duration_s:g} s per clip, "
        f"{config.max_batch_files} clips per batch; {config.concurrency} requests at a time."
    )
    with gr.Blocks(title="MMIM multimodal sentiment") as demo:
        gr.Markdown(
            "# MMIM multimodal sentiment\n"
            "Give any of text, audio and video (at least one). A video's own sound track is its audio; "
            "without text, the speech recogniser writes the transcript. " + limits
        )
        with gr.Tab("One clip"):
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
        with gr.Tab("Timeline"):
            gr.Markdown(
                f"A whole video or recording (up to {config.max_timeline_s / 60:g} min, "
                f"{config.max_timeline_upload_mb:g} MB) cut into utterance-like segments at the speech "
                "recogniser's sentences and pauses; each segment is scored like a clip. Without speech the "
                "recording is cut into fixed windows."
            )
            timeline_file = gr.File(label="Video or audio", elem_id="timeline_input",
                                    file_types=sorted(AUDIO_EXTS | VIDEO_EXTS))
            timeline_button = gr.Button("Build the timeline", variant="primary", elem_id="timeline_button")
            timeline_summary = gr.Markdown(elem_id="timeline_summary")
            timeline_plot = gr.LinePlot(x="time_s", y="value", color="series", label="Score and Shapley values over time",
                                        elem_id="timeline_plot", y_lim=[-3, 3], x_title="seconds")
            timeline_table = gr.Dataframe(label="Segments", elem_id="timeline_table", interactive=False)
            with gr.Accordion("Raw timeline (JSON)", open=False):
                timeline_raw = gr.JSON(elem_id="timeline_json")
            timeline_button.click(timeline, [timeline_file], [timeline_summary, timeline_plot, timeline_table, timeline_raw],
                                  api_name="timeline")
        with gr.Tab("Batch"):
            gr.Markdown(
                "Several clips, or a zip of them, plus an optional CSV of transcripts with columns `file,text` "
                "(file name with or without extension). Clips without a transcript are transcribed automatically. "
                "Each clip's error, if any, is in its row."
            )
            with gr.Row():
                batch_files = gr.File(label="Clips or a zip", file_count="multiple", elem_id="batch_files",
                                      file_types=[*sorted(AUDIO_EXTS | VIDEO_EXTS), ".zip"])
                batch_csv = gr.File(label="Transcripts CSV (optional)", file_types=[".csv"], elem_id="batch_transcripts")
            batch_segments = gr.Checkbox(label="One row per segment (each clip as a timeline)", value=False,
                                         elem_id="batch_segments")
            batch_button = gr.Button("Run batch", variant="primary", elem_id="batch_button")
            batch_out = gr.File(label="Results CSV", elem_id="batch_output")
            batch_preview = gr.Dataframe(label="Results", elem_id="batch_preview", interactive=False)
            batch_button.click(batch, [batch_files, batch_csv, batch_segments], [batch_out, batch_preview], api_name="batch")
        with gr.Tab("About"):
            info = predictor.info()
            gr.Markdown(
                f"Model: `{info['model_dir']}` ({', '.join(info['modalities'])}; features `{info['feature_spec']}`) "
                f"on {info['provider']}.\n\n"
                "**Score**: sentiment in [−3, 3]; label from the 7-class bin (below 0 negative, 0 neutral, above 0 positive).\n\n"
                "**Shapley value of m**: m's share of the score's distance from the baseline, the score with every "
                "present modality replaced by its training-mean representation; the values of the present modalities "
                "add up exactly to score − baseline. The baseline is a choice (the training mean), and a different "
                "baseline would share the score differently.\n\n"
                "**Interaction a×b**: the Shapley interaction index, in score units. Positive when a and b together "
                "move the score more than each does alone (they reinforce each other), negative when they overlap "
                "or cancel.\n\n"
                "**BA text→m**: a Barber-Agakov estimate of how expected this clip's m is given its words, "
                "log q(m | text) + H(m), in nats. Its percentile says where it falls among the training clips' "
                "values: a low percentile means m is unusual for these words, and below the 1st it is outside "
                "what the model saw in training.\n\n"
                "**CPC fusion→m**: how well the fused representation picks this clip's own m out of a bank of "
                "K training clips, in nats (at most log K). A high percentile means m is well reflected in the "
                "fused representation, compared with training clips.\n\n"
                "**Leave-one-out**: the score minus the score with only m at its training mean, kept for "
                "continuity; unlike Shapley values these do not add up to the score. Absent modalities show "
                "*absent*, never a number.\n\n"
                "**Use from Python** (`pip install gradio_client`):\n\n" + api_snippet(config)
            )
    return demo
