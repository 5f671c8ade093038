"""Data: samples and the collate (samples), MOSI (mosi), datasets written by featurize
(featurized), utterance context (context), and fused targets (targets)."""
from .mosi import BENCHMARKS, load_mosi, load_splits
from .samples import Batch, Collator, Sample, feature_statistics

__all__ = ["BENCHMARKS", "Batch", "Collator", "Sample", "feature_statistics", "load_mosi", "load_splits"]
