"""How often, and how finely, the face needs a search of the whole frame: the visual stream
under several search settings.

    python -m model.features.bench.tracking [--sequences 60] [--settings 1@640,5@640,10@640,5@480] [--out results.json]

Between searches of the whole frame the front end looks for the face only near its last box.
A setting K@W searches the whole frame every K frames (`DetectorConfig.redetect_every`) and
whenever the face was lost, at W px wide (`detect_width`); the front end's is 5@640.

Each sequence is 10 s at the front end's 5 fps: a held-out FER2013 face (PrivateTest) on a real
photo (the detector bench's backgrounds), moving as a talking head does (a damped random walk of its centre, its size breathing by up to 8 %, its roll
wandering by up to 12 degrees), 64-200 px wide in a 640x480 frame. A third of the sequences are
plain, in a third the face is gone for 2 s in the middle, and in a third a second, larger face
comes in at 3-6 s and stays: the front end must switch to it. Every setting sees the same frames,
tracked as one clip (the timeline restarts a track every 25 frames, which can only help).

Per setting: the share of frames with a face whose row has the largest face (its centre inside
it, its side within a factor of 2), the share of frames without a face that got one anyway,
how many frames the switch to the larger face took, and against a full search on every frame
(the first setting, 1@640): the box's IoU and the expression probabilities' mean absolute
change. Time is the front end's face stage (grey frames, search, crops) per frame, one thread.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.cli import emit_json
from model.features.bench.detector import backgrounds

FRAMES = 50          # 10 s at the front end's 5 fps
EVENT_AT = (15, 30)  # the face leaves, or the larger face comes in, at a frame drawn from these (3-6 s)
AWAY = 10            # for 2 s
SIZE = (480, 640)
KINDS = ("plain", "away", "second face")


@dataclass
class Walker:
    """One face moving as a talking head: centre, side in px and roll, frame by frame."""
    face: np.ndarray
    cx: float
    cy: float
    side: float
    rng: np.random.Generator
    x_range: tuple[float, float] = (0.0, SIZE[1])  # where its centre may go
    vx: float = 0.0
    vy: float = 0.0
    roll: float = 0.0
    phase: float = 0.0

    def step(self) -> tuple[float, float, float, float]:
        self.vx = 0.8 * self.vx + self.rng.normal(0, 0.04 * self.side)
        self.vy = 0.8 * self.vy + self.rng.normal(0, 0.03 * self.side)
        half = 0.9 * self.side + 2  # the pasted patch: 1.6 sides, breathing by 8 %
        self.cx = float(np.clip(self.cx + self.vx, max(half, self.x_range[0]), min(SIZE[1] - half, self.x_range[1])))
        self.cy = float(np.clip(self.cy + self.vy, half, SIZE[0] - half))
        self.roll = float(np.clip(self.roll + self.rng.normal(0, 3), -12, 12))
        self.phase += self.rng.uniform(0.2, 0.6)
        return self.cx, self.cy, self.side * (1 + 0.08 * np.sin(self.phase)), self.roll


def paste(frame: np.ndarray, face: np.ndarray, cx: float, cy: float, size: float, roll: float) -> None:
    """The grey face, `size` px wide and rolled, with some of its own surround (FER crops are tight), centred at (cx, cy)."""
    import cv2

    size = int(round(size))
    side = int(size * 1.6)
    big = cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC)
    pad = (side - size) // 2
    patch = cv2.copyMakeBorder(big, pad, side - size - pad, pad, side - size - pad, cv2.BORDER_REPLICATE)
    patch = cv2.warpAffine(patch, cv2.getRotationMatrix2D((side / 2, side / 2), roll, 1.0), (side, side),
                           borderMode=cv2.BORDER_REPLICATE)
    x, y = int(round(cx - side / 2)), int(round(cy - side / 2))
    frame[y : y + side, x : x + side] = patch


def sequence(kind: str, faces: np.ndarray, background: np.ndarray, rng: np.random.Generator):
    """(grey frames, per frame the largest visible face as (cx, cy, side) or None, the event's frame)."""
    import cv2

    grey = cv2.cvtColor(background, cv2.COLOR_RGB2GRAY)
    if kind == "second face":
        # The face on the left third, the 1.5x larger one coming in on the right: they never overlap.
        side = rng.uniform(64, 110)
        main = Walker(faces[0], 0.25 * SIZE[1], rng.uniform(0.35, 0.65) * SIZE[0], side, rng, (0, 0.3 * SIZE[1]))
        other = Walker(faces[1], 0.75 * SIZE[1], rng.uniform(0.35, 0.65) * SIZE[0], 1.5 * side, rng,
                       (0.7 * SIZE[1], SIZE[1]))
    else:
        side = rng.uniform(64, 200)
        main = Walker(faces[0], rng.uniform(0.3, 0.7) * SIZE[1], rng.uniform(0.35, 0.65) * SIZE[0], side, rng)
    event = int(rng.integers(*EVENT_AT))
    frames, truth = [], []
    for i in range(FRAMES):
        frame, visible = grey.copy(), []
        pose = main.step()
        if not (kind == "away" and event <= i < event + AWAY):
            visible.append(pose)
            paste(frame, main.face, *pose)
        if kind == "second face" and i >= event:
            pose = other.step()
            visible.append(pose)
            paste(frame, other.face, *pose)
        frames.append(frame)
        truth.append(max(((cx, cy, s) for cx, cy, s, _ in visible), key=lambda t: t[2], default=None))
    return frames, truth, event


def _boxes(rows: np.ndarray) -> np.ndarray:
    """(N, 4) x0, y0, x1, y1 in px from the rows' normalised centre and size."""
    from model.features.visual import BOX_COLUMNS

    cx, cy, w, h = (rows[:, BOX_COLUMNS] * [SIZE[1], SIZE[0], SIZE[1], SIZE[0]]).T
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)


def _hits(rows: np.ndarray, truth) -> np.ndarray:
    """Per row: it has a face whose centre lies inside the true largest face, at its size within 2x."""
    from model.features.visual import FACE_PRESENT

    boxes = _boxes(rows)
    out = np.zeros(len(rows), bool)
    for i, (box, present, t) in enumerate(zip(boxes, rows[:, FACE_PRESENT] == 1, truth)):
        if t is None or not present:
            continue
        tx, ty, side = t
        (cx, cy), (w, h) = (box[:2] + box[2:]) / 2, box[2:] - box[:2]
        out[i] = abs(cx - tx) <= side / 2 and abs(cy - ty) <= side / 2 and 0.5 <= max(w, h) / side <= 2.0
    return out


def _frames_to_switch(hits_after: np.ndarray) -> int:
    """Frames from the larger face's arrival to the first row that has it (all of them if none does)."""
    return int(np.argmax(hits_after)) if hits_after.any() else len(hits_after)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    inter = np.clip(np.minimum(a[:, 2:], b[:, 2:]) - np.maximum(a[:, :2], b[:, :2]), 0, None).prod(1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def detector_config(setting: str):
    """"K@W" (search the whole frame every K frames, W px wide) as a DetectorConfig."""
    from model.features.visual import DetectorConfig

    every, width = setting.split("@")
    return DetectorConfig(redetect_every=int(every), detect_width=int(width))


def run(n_sequences: int = 60, settings=("1@640", "5@640", "10@640", "5@480"), seed: int = 0) -> dict:
    from model.features.fer import load_fer
    from model.features.frontend import FrontEnd
    from model.features.visual import EXPRESSION_COLUMNS, FACE_PRESENT, FaceDetector
    from model.files import data_root

    rng = np.random.default_rng(seed)
    fer = load_fer(data_root() / "faces")
    pool = np.flatnonzero((fer["split"] == "test") & (fer["blank"] == 0))
    faces = fer["x"][rng.choice(pool, 2 * n_sequences, replace=False)]
    cases = [(KINDS[i % len(KINDS)], *sequence(KINDS[i % len(KINDS)], faces[2 * i : 2 * i + 2], bg, rng))
             for i, bg in enumerate(backgrounds(rng, n_sequences))]
    front = FrontEnd()
    rows, seconds = {}, {}
    for k in settings:
        front.detector = FaceDetector(detector_config(k))
        rows[k], seconds[k] = [], 0.0
        for _, frames, _, _ in cases:
            t0 = time.perf_counter()
            rows[k].append(front.visual_rows(frames)[0])
            seconds[k] += time.perf_counter() - t0
    reference = settings[0]
    out = {"sequences": n_sequences, "frames": n_sequences * FRAMES, "reference": reference, "settings": {}}
    for k in settings:
        hit = np.concatenate([_hits(r, truth) for r, (_, _, truth, _) in zip(rows[k], cases)])
        has = np.concatenate([[t is not None for t in truth] for _, _, truth, _ in cases])
        present = np.concatenate([r[:, FACE_PRESENT] == 1 for r in rows[k]])
        switch = [_frames_to_switch(_hits(r, truth)[event:]) for r, (kind, _, truth, event) in zip(rows[k], cases)
                  if kind == "second face"]
        ref = np.concatenate(rows[reference])
        mine = np.concatenate(rows[k])
        both = (ref[:, FACE_PRESENT] == 1) & (mine[:, FACE_PRESENT] == 1)
        out["settings"][k] = {
            "largest_face_found": round(float(hit[has].mean()), 4),
            "face_where_none": round(float(present[~has].mean()), 4),
            "frames_to_switch_median": float(np.median(switch)),
            "frames_to_switch_max": int(max(switch)),
            "box_iou_vs_reference": round(float(_iou(_boxes(mine[both]), _boxes(ref[both])).mean()), 4),
            "expression_abs_change_vs_reference": round(float(np.abs(mine[both][:, EXPRESSION_COLUMNS]
                                                                     - ref[both][:, EXPRESSION_COLUMNS]).mean()), 5),
            "ms_per_frame": round(1000 * seconds[k] / (n_sequences * FRAMES), 2),
        }
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=60)
    parser.add_argument("--settings", default="1@640,5@640,10@640,5@480",
                        help="K@W: search the whole frame every K frames, W px wide; the first is the reference")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    emit_json(run(args.sequences, tuple(args.settings.split(",")), args.seed), args.out)


if __name__ == "__main__":
    main()
