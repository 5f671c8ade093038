"""The Gradio app and its Gradio-free predictor (`python -m app`, `python -m app.predict`).

Both variables must be set before gradio or huggingface_hub is imported: the app
makes no outside connection (no analytics, no model hub).
"""
import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"
