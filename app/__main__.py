"""`python -m app`: the Gradio app on the shipped weights, bound to 127.0.0.1 by default.

Flags come from AppConfig (app/config.py): --model-dir, --host, --port,
--max-upload-mb, --max-duration-s, --concurrency, ... The host and port also follow
Gradio's own variables, GRADIO_SERVER_NAME and GRADIO_SERVER_PORT, as every Gradio app,
Space and container recipe expects: a flag wins over the variable, the variable over the
default.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from .config import AppConfig


# AppConfig field -> the Gradio environment variable that sets it when no flag does.
GRADIO_ENV = {"host": "GRADIO_SERVER_NAME", "port": "GRADIO_SERVER_PORT"}


def parse_args(argv=None, environ=None) -> AppConfig:
    from model.cli import add_dataclass_flags, dataclass_from_args

    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog="python -m app", description="MMIM multimodal sentiment app (Gradio)",
                                     epilog="GRADIO_SERVER_NAME and GRADIO_SERVER_PORT set the host and port when "
                                            "--host and --port are not given.")
    add_dataclass_flags(parser, AppConfig)
    args = parser.parse_args(argv)
    from_env = {}
    for field, variable in GRADIO_ENV.items():
        value = environ.get(variable, "").strip()
        if getattr(args, field) is None and value:
            if field == "port" and not (value.isdigit() and 0 < int(value) < 65536):
                parser.error(f"{variable}={value!r} is not a port number (1-65535)")
            from_env[field] = int(value) if field == "port" else value
    return dataclass_from_args(AppConfig, args, **from_env)


def serve(config: AppConfig, block: bool = True):
    from export.artifacts import ModelFolderError
    from model.features.whisper_models import WhisperModelError

    from .predictor import Predictor
    from .ui import EXAMPLES_DIR, build_ui

    try:
        predictor = Predictor(config.model_dir, config)
    except (ModelFolderError, FileNotFoundError) as e:
        logging.getLogger("mmim.app").error("cannot load the model: %s (pass --model-dir DIR with an exported model folder)", e)
        sys.exit(2)
    except WhisperModelError as e:
        logging.getLogger("mmim.app").error("cannot load the speech recogniser: %s", e)
        sys.exit(2)
    predictor.predict(text="warm up")  # the first ONNX run allocates; do it before the first user waits on it
    demo = build_ui(predictor, config)
    demo.queue(max_size=config.queue_size, default_concurrency_limit=config.concurrency)
    return demo.launch(
        server_name=config.host,
        server_port=config.port,
        share=False,
        max_file_size=max(config.max_upload_bytes, config.max_timeline_upload_bytes),  # the front end checks each limit
        allowed_paths=[str(EXAMPLES_DIR)],
        show_error=True,
        prevent_thread_lock=not block,
        footer_links=["api"],
    )


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(parse_args(argv))


if __name__ == "__main__":
    main()
