"""The release recipe of the shipped clip model (weights/mmim-clip): corpora, matched tuples,
training, export, evaluation through the runtime, and the model card.

    python -m export.ship --out weights/mmim-clip
"""
from .recipe import ShipConfig, ship

__all__ = ["ShipConfig", "ship"]
