"""Data: samples (samples), batches and the collate (batches), MOSI (mosi), datasets written
by featurize (featurized), utterance context (context), and fused targets (targets).

Batches need torch; serving does not, so they load on first use."""
from importlib import import_module

from .mosi import BENCHMARKS, load_mosi, load_splits
from .samples import Sample

_NEED_TORCH = {"Batch": ".batches", "Collator": ".batches", "feature_statistics": ".batches"}

__all__ = ["BENCHMARKS", "Batch", "Collator", "Sample", "feature_statistics", "load_mosi", "load_splits"]


def __getattr__(name: str):
    if name in _NEED_TORCH:
        return getattr(import_module(_NEED_TORCH[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
