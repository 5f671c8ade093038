"""Face detectors on one benchmark: Haar (OpenCV's cascade) vs yuface (libfacedetection's CNN, the front end's default).

    python -m model.features.bench.detector [--faces 150] [--out results.json]

Held-out FER2013 faces (PrivateTest) are pasted onto 640x480 backgrounds (real photos
from scikit-image, none with a human face) at several sizes and rotations; a detection
counts when its box centre lies inside the pasted face and its side is within a factor
of 2 of the face's. Backgrounds alone, at random crops, give the false positives per
frame. Both run as the front end runs them (grey, searched at 320 px wide); time is the
median per 640x480 frame, one thread.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from model.cli import emit_json

SIZES = (64, 144)
ANGLES = (0, 25)
# Photos without human faces (the cat in "chelsea" is one, so it is left out).
BACKGROUNDS = ("coffee", "rocket", "brick", "grass", "gravel", "hubble_deep_field", "immunohistochemistry")


def backgrounds(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    import cv2
    import skimage.data

    out = []
    for i in range(n):
        img = getattr(skimage.data, BACKGROUNDS[i % len(BACKGROUNDS)])()
        img = np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3]
        img = cv2.resize(img, (max(640, img.shape[1]), max(480, img.shape[0])))
        y, x = rng.integers(0, img.shape[0] - 479), rng.integers(0, img.shape[1] - 639)
        out.append(np.ascontiguousarray(img[y : y + 480, x : x + 640]))
    return out


def paste(background: np.ndarray, face: np.ndarray, size: int, angle: float, rng) -> tuple[np.ndarray, tuple]:
    """The grey face, resized to `size` and rotated, on the background; returns the frame
    and the face's (cx, cy, side)."""
    import cv2

    side = int(size * 1.6)  # the face with some of its own surround, as FER crops are tight
    big = cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC)
    patch = cv2.copyMakeBorder(big, (side - size) // 2, (side - size + 1) // 2, (side - size) // 2, (side - size + 1) // 2,
                               cv2.BORDER_REPLICATE)
    rot = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
    patch = cv2.warpAffine(patch, rot, (side, side), borderMode=cv2.BORDER_REPLICATE)
    frame = background.copy()
    y, x = rng.integers(0, 480 - side), rng.integers(0, 640 - side)
    frame[y : y + side, x : x + side] = patch[..., None]
    return frame, (x + side / 2, y + side / 2, size)


def front_end_detector(backend: str, width: int | None = None):
    """The front end's own FaceDetector with that backend (its settings; `width` overrides
    the search width)."""
    import cv2

    from model.features.visual import DetectorConfig, FaceDetector

    cfg = DetectorConfig.haar() if backend == "haar" else DetectorConfig()
    if width:
        cfg.detect_width = width
    detector = FaceDetector(cfg)
    return lambda rgb: [(b.x, b.y, b.w, b.h) for b in detector.detect(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))]


def hit(boxes, truth) -> bool:
    cx, cy, side = truth
    return any(x <= cx <= x + w and y <= cy <= y + h and 0.5 <= max(w, h) / side <= 2.0 for x, y, w, h in boxes)


def run(n_faces: int = 150, seed: int = 0) -> dict:
    from model.files import data_root
    from model.features.fer import load_fer

    rng = np.random.default_rng(seed)
    fer = load_fer(data_root() / "faces")
    pool = np.flatnonzero((fer["split"] == "test") & (fer["blank"] == 0))
    faces = fer["x"][rng.choice(pool, n_faces, replace=False)]
    bgs = backgrounds(rng, n_faces)
    cases = {f"{size}px, {angle}°": [paste(bgs[i], faces[i], size, angle * (1 if i % 2 else -1), rng)
                                     for i in range(n_faces)] for size in SIZES for angle in ANGLES}
    empty = backgrounds(np.random.default_rng(seed + 1), 60)
    out = {"faces": n_faces, "no_face_frames": len(empty), "detectors": {}}
    for name, backend, width in (("haar (320 px)", "haar", None), ("yuface at 320 px", "yuface", 320),
                                 ("yuface at 480 px", "yuface", 480), ("yuface (640 px)", "yuface", None)):
        detect = front_end_detector(backend, width)
        row = {case: float(np.mean([hit(detect(frame), truth) for frame, truth in frames])) for case, frames in cases.items()}
        row["false_positives_per_frame"] = float(np.mean([len(detect(f)) for f in empty]))
        times = []
        for frame, _ in cases[f"{SIZES[-1]}px, 0°"][:40]:
            t0 = time.perf_counter()
            detect(frame)
            times.append(time.perf_counter() - t0)
        row["ms_per_frame"] = round(1000 * statistics.median(times), 1)
        out["detectors"][name] = row
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=150)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    emit_json(run(args.faces), args.out)


if __name__ == "__main__":
    main()
