"""The "Batch" tab: several clips or a zip (and an optional transcripts CSV) in, a results CSV
out, with each clip's error in its own row."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from model.features.media import MEDIA_EXTS

from ..batch import run_batch
from ..config import AppConfig
from ..predictor import Predictor
from .common import PathFile, run_safely


# Results CSVs kept on disk for download; older ones are removed. Gradio copies each into its
# own cache as it returns, so only the newest few need to stay here.
RESULTS_KEPT = 16


def results_folder() -> Path:
    """A new folder for one batch's CSV, under this process's results folder, after removing
    all but the newest RESULTS_KEPT earlier ones: the server's disk use stays bounded."""
    root = Path(tempfile.gettempdir()) / f"mmim-results-{os.getpid()}"
    root.mkdir(exist_ok=True)
    earlier = sorted(root.iterdir(), key=lambda p: p.stat().st_mtime)
    for old in earlier[: max(0, len(earlier) - RESULTS_KEPT + 1)]:
        shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix="batch-", dir=root))


def build_batch_tab(predictor: Predictor, config: AppConfig) -> None:
    def batch(files, transcripts, per_segment=False, progress=gr.Progress()):
        files = [getattr(f, "name", f) for f in files or []]
        out_dir = results_folder()

        def report(i, n, name):
            progress((i, n), desc=f"{name} ({i}/{n})", unit="clips")

        path, rows = run_safely(run_batch, predictor, files, transcripts, out_dir, config, report, bool(per_segment))
        columns = ["file", "segment_start", "segment_end"] if per_segment else ["file"]
        preview = pd.DataFrame(rows)[[*columns, "score", "label", "bin7", "text_source", "error"]]
        return str(path), preview

    gr.Markdown(
        "Several clips, or a zip of them, plus an optional CSV of transcripts with columns `file,text` "
        "(file name with or without extension). Clips without a transcript are transcribed automatically. "
        "Each clip's error, if any, is in its row."
    )
    with gr.Row():
        batch_files = PathFile(label="Clips or a zip", file_count="multiple", elem_id="batch_files",
                              file_types=[*sorted(MEDIA_EXTS), ".zip"])
        batch_csv = PathFile(label="Transcripts CSV (optional)", file_types=[".csv"], elem_id="batch_transcripts")
    batch_segments = gr.Checkbox(label="One row per segment (each clip as a timeline)", value=False,
                                 elem_id="batch_segments")
    batch_button = gr.Button("Run batch", variant="primary", elem_id="batch_button")
    batch_out = gr.File(label="Results CSV", elem_id="batch_output")
    batch_preview = gr.Dataframe(label="Results", elem_id="batch_preview", interactive=False)
    batch_button.click(batch, [batch_files, batch_csv, batch_segments], [batch_out, batch_preview], api_name="batch")
