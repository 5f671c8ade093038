"""The "About" tab: the model in use, what each diagnostic means (app/DIAGNOSTICS.md, the one
text the docs link to), and how to call the app from Python."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from ..config import AppConfig
from ..predictor import Predictor
from .clip_tab import API_NAME

DIAGNOSTICS = Path(__file__).resolve().parents[1] / "DIAGNOSTICS.md"


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


def build_about_tab(predictor: Predictor, config: AppConfig) -> None:
    info = predictor.info()
    explanation = DIAGNOSTICS.read_text(encoding="utf-8").split("\n", 1)[1].strip()  # without its title
    gr.Markdown(
        f"Model: `{info['model_dir']}` ({', '.join(info['modalities'])}; features `{info['feature_spec']}`) "
        f"on {info['provider']}.\n\n" + explanation + "\n\n"
        "**Use from Python** (`pip install gradio_client`):\n\n" + api_snippet(config)
    )
