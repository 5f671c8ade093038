"""What every tab shares: turning errors into messages the user can act on."""
from __future__ import annotations

import logging

import gradio as gr
from gradio.data_classes import FileData
from gradio.utils import NamedString
from gradio_client import utils as client_utils

from model.features import FeatureError

log = logging.getLogger("mmim.app")


def run_safely(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except FeatureError as e:
        raise gr.Error(str(e), print_exception=False) from None
    except gr.Error:
        raise
    except Exception as e:  # the queue worker survives; the user sees a short message
        log.exception("request failed")
        raise gr.Error(f"internal error ({type(e).__name__}); the server logged the details. Try another input.") from None


class PathFile(gr.File):
    """gr.File that hands the uploaded file's path to the handler. Gradio 6.31's own File
    also opens an empty NamedTemporaryFile in its cache for every file it preprocesses and
    never uses or removes it: one stray file per timeline or batch request (found by
    `python -m app.soak`)."""

    # A template of gr.File: the page draws it with File's own frontend (Gradio picks the
    # frontend by the parent's name for templates, by the class's own name otherwise).
    is_template = True

    def _process_single_file(self, f: FileData):
        if self.type != "filepath":
            return super()._process_single_file(f)
        if self.file_types and not client_utils.is_valid_file(f.path, self.file_types):
            raise gr.Error(f"Invalid file type. Please upload a file that is one of these formats: {self.file_types}")
        return NamedString(f.path)
