"""What every tab shares: turning errors into messages the user can act on."""
from __future__ import annotations

import logging

import gradio as gr

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
