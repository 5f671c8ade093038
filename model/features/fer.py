"""FER2013 faces as arrays, decoded once from the shared tar.xz into an npz cache.

Decoding 35,887 JPEGs from a solid xz archive takes a while; the uint8 cache
under runs/ (git-ignored) makes every later load a fraction of a second.
"""
from __future__ import annotations

import csv
import logging
import tarfile
from pathlib import Path

import numpy as np

from model.files import REPO, atomic_write, data_root

log = logging.getLogger(__name__)

FACES_DIR = data_root() / "faces"
CACHE = REPO / "runs" / "fer2013_cache.npz"
# FER2013 label ids (not alphabetical): the order of the CNN's outputs.
EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def _decode(faces_dir: Path) -> dict[str, np.ndarray]:
    import cv2

    meta = {r["path"]: r for r in csv.DictReader(open(faces_dir / "metadata.csv", newline=""))}
    images, labels, splits, blank = [], [], [], []
    with tarfile.open(faces_dir / "fer2013_images.tar.xz") as tf:
        for m in tf:
            if not m.isfile():
                continue
            r = meta[m.name]
            buf = np.frombuffer(tf.extractfile(m).read(), np.uint8)
            images.append(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE))
            labels.append(int(r["label_id"]))
            splits.append(r["split"])
            blank.append(int(r["blank"]))
    return {
        "x": np.stack(images),
        "y": np.array(labels, np.int64),
        "split": np.array(splits),
        "blank": np.array(blank, np.int8),
    }


def load_fer(faces_dir: Path = FACES_DIR, cache: Path = CACHE) -> dict[str, np.ndarray]:
    """{"x": (N,48,48) uint8, "y": (N,) int64, "split": (N,) str, "blank": (N,) int8}."""
    if not cache.is_file():
        log.info("decoding %s once into %s", faces_dir, cache)
        arrays = _decode(faces_dir)
        atomic_write(cache, lambda tmp: np.savez(tmp, **arrays))
    with np.load(cache, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
