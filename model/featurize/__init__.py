"""Featurize a folder of clips into a training dataset: the CLI and driver (run), the worker
side (worker), and the Dask adapter (cluster). `python -m model.featurize --help`."""
from .run import FeaturizeConfig, featurize

__all__ = ["FeaturizeConfig", "featurize"]
