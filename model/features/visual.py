"""Visual features: the largest face per frame (yuface CNN, or Haar), its geometry and 7 expression probabilities."""
from __future__ import annotations

import ctypes
import functools
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.features.fer import EXPRESSIONS
from model.files import REPO, sha256
from model.onnx_session import make_session

EXPRESSION_MODEL = REPO / "weights" / "expression" / "fer_cnn.onnx"
CASCADE = "haarcascade_frontalface_default.xml"
BOX_NAMES = ("face_cx", "face_cy", "face_w", "face_h")
VISUAL_NAMES = tuple(f"expr_{e}" for e in EXPRESSIONS) + BOX_NAMES + ("face_present",)
# The column layout of a visual feature row, by name: the expression probabilities, the face
# box (centre and size as fractions of the frame), and 1.0 where a face was found.
EXPRESSION_COLUMNS = slice(0, len(EXPRESSIONS))
BOX_COLUMNS = slice(len(EXPRESSIONS), len(EXPRESSIONS) + len(BOX_NAMES))
FACE_PRESENT = VISUAL_NAMES.index("face_present")
VISUAL_DIM = len(VISUAL_NAMES)
FACE_SIZE = 48


@dataclass
class FaceBox:
    x: float
    y: float
    w: float
    h: float


@dataclass
class DetectorConfig:
    # "yuface": libfacedetection's CNN (yuface wheel); "haar": OpenCV's frontal cascade.
    # On FER faces pasted onto photos (model/features/detector_bench.py) yuface at 640 px
    # finds 95 % of 144 px faces (Haar 61 %), 83 % of them turned by 25 degrees (Haar 14 %)
    # and 77 % of 64 px faces (Haar 24 %), with no false positives on face-free photos.
    backend: str = "yuface"
    yuface_conf: float = 0.5
    # Frames are searched at this width (grey): the main speed lever. yuface needs the
    # full 640 px for small faces (at 320 it finds 21 % of 64 px faces); Haar uses 320.
    detect_width: int = 640
    scale_factor: float = 1.15
    min_neighbors: int = 5
    min_size: int = 24            # px at detect_width; Haar's own base window
    # Crop side = crop_scale * box side, centre shifted down by crop_shift * box side.
    # On 1,500 FER test faces (3x upscaled, replicate border) the Haar box side is
    # within 3 % of the FER crop side (median ratio 1.03) and centred (shift 0.00),
    # so the Haar box itself is the FER framing (model/features/eval_expression.py).
    # yuface's box matches it as well (800 faces: median side ratio 1.00, shift -0.02).
    crop_scale: float = 1.0
    crop_shift: float = 0.0
    # Between full-frame searches (every redetect_every frames) the face is looked for
    # only near its last box, at a scale where it is track_side px wide: ~10x cheaper.
    redetect_every: int = 5
    track_side: int = 64

    @classmethod
    def haar(cls) -> "DetectorConfig":
        """The Haar settings the front end used before yuface (320 px search, 48 px tracking)."""
        return cls(backend="haar", detect_width=320, track_side=48)


class FaceDetector:
    """yuface (libfacedetection's CNN, stateless C calls) or the Haar frontal-face cascade
    from opencv-python-headless (one cascade per thread: OpenCV does not promise
    detectMultiScale is safe to share)."""

    def __init__(self, config: DetectorConfig | None = None):
        import cv2

        self.cfg = config or DetectorConfig()
        if self.cfg.backend not in ("yuface", "haar"):
            raise ValueError(f"unknown face detector {self.cfg.backend!r}; choose yuface or haar")
        self.path = str(Path(cv2.data.haarcascades) / CASCADE)
        if self.cfg.backend == "haar" and cv2.CascadeClassifier(self.path).empty():
            raise RuntimeError(f"cannot load the Haar cascade {self.path}")
        self._local = threading.local()

    def _cascade(self):
        import cv2

        if not hasattr(self._local, "cascade"):
            self._local.cascade = cv2.CascadeClassifier(self.path)
        return self._local.cascade

    def detect(self, grey: np.ndarray) -> list[FaceBox]:
        """All faces in a grey frame, largest first, in that frame's pixel coordinates."""
        import cv2

        h, w = grey.shape
        scale = min(1.0, self.cfg.detect_width / w)
        small = grey
        if scale < 1:
            small = cv2.resize(grey, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        if self.cfg.backend == "yuface":
            return self._yuface(small, scale)
        small = cv2.equalizeHist(small)
        found = self._cascade().detectMultiScale(
            small, scaleFactor=self.cfg.scale_factor, minNeighbors=self.cfg.min_neighbors,
            minSize=(self.cfg.min_size, self.cfg.min_size))
        boxes = [FaceBox(x / scale, y / scale, bw / scale, bh / scale) for x, y, bw, bh in np.reshape(found, (-1, 4))]
        return sorted(boxes, key=lambda b: b.w * b.h, reverse=True)

    def _yuface(self, small: np.ndarray, scale: float) -> list[FaceBox]:
        import cv2

        # Grey in three channels: the front end works on grey frames, as FER's faces are.
        found = yuface_boxes(cv2.cvtColor(small, cv2.COLOR_GRAY2BGR), self.cfg.yuface_conf)
        boxes = [FaceBox(x / scale, y / scale, bw / scale, bh / scale)
                 for x, y, bw, bh in np.reshape(found, (-1, 4)).astype(np.float64)]
        return sorted(boxes, key=lambda b: b.w * b.h, reverse=True)

    def detect_near(self, grey: np.ndarray, prev: FaceBox) -> list[FaceBox]:
        """Faces of about prev's size within one box side of it (tracking between full searches)."""
        import cv2

        h, w = grey.shape
        side = max(prev.w, prev.h)
        x0, y0 = int(max(0, prev.x - side)), int(max(0, prev.y - side))
        x1, y1 = int(min(w, prev.x + 2 * side)), int(min(h, prev.y + 2 * side))
        scale = min(1.0, self.cfg.track_side / side)
        roi = grey[y0:y1, x0:x1]
        if scale < 1:
            roi = cv2.resize(roi, (max(1, round(roi.shape[1] * scale)), max(1, round(roi.shape[0] * scale))),
                             interpolation=cv2.INTER_AREA)
        if self.cfg.backend == "yuface":
            near = [FaceBox(x0 + b.x, y0 + b.y, b.w, b.h) for b in self._yuface(roi, scale)]
            return [b for b in near if 0.7 <= max(b.w, b.h) / side <= 1.4]
        s = side * scale
        found = self._cascade().detectMultiScale(
            cv2.equalizeHist(roi), scaleFactor=1.1, minNeighbors=self.cfg.min_neighbors,
            minSize=(int(s * 0.7), int(s * 0.7)), maxSize=(int(s * 1.4) + 1, int(s * 1.4) + 1))
        boxes = [FaceBox(x0 + x / scale, y0 + y / scale, bw / scale, bh / scale)
                 for x, y, bw, bh in np.reshape(found, (-1, 4))]
        return sorted(boxes, key=lambda b: b.w * b.h, reverse=True)

    def track(self, greys: list[np.ndarray], independent: bool = False) -> tuple[list[FaceBox | None], int]:
        """The largest face per frame and the most faces seen in one full-frame search.

        Full search on every redetect_every-th frame and whenever the face was lost;
        otherwise search near the previous box. independent: full search on every
        frame (unrelated images rather than a clip).
        """
        out, prev, most = [], None, 0
        for i, grey in enumerate(greys):
            near = prev is not None and not independent and i % self.cfg.redetect_every
            boxes = self.detect_near(grey, prev) if near else None
            if not boxes:
                boxes = self.detect(grey)
                most = max(most, len(boxes))
            prev = boxes[0] if boxes else None
            out.append(prev)
        return out, most

    def crop(self, grey: np.ndarray, box: FaceBox) -> np.ndarray:
        """48x48 uint8 crop framed like FER2013 (border pixels replicated outside the frame)."""
        import cv2

        side = max(2.0, self.cfg.crop_scale * max(box.w, box.h))
        cx = box.x + box.w / 2
        cy = box.y + box.h / 2 + self.cfg.crop_shift * box.h
        patch = cv2.getRectSubPix(grey, (int(round(side)), int(round(side))), (cx, cy))
        return cv2.resize(patch, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)


def _yuface_module():
    """yuface, with its bundled OpenMP runtime set to one thread.

    Its libgomp reads OMP_NUM_THREADS once, when it loads: two threads on a busy
    2-core machine took 360 ms a frame instead of 98. The variable is restored at
    once, so no other library in the process sees it.
    """
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import yuface
    finally:
        if previous is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = previous
    return yuface


_BUFFER_BYTES = 0x9000  # libfacedetection's DETECT_BUFFER_SIZE: the count and up to 1,024 faces
_buffers = threading.local()


@functools.cache
def _facedetect_cnn():
    """libfacedetection's C entry point, from the library inside the yuface wheel.

    The wheel's own binding allocates a 36 KB result buffer on every call and never frees
    it: 0.3 MB per clip, a server grew by 0.45 MB a request (`python -m app.soak`). Called
    here with a buffer each thread owns and reuses; the results are the same numbers."""
    module = _yuface_module()
    library = ctypes.CDLL(str(Path(module.__file__).parent / "libfacedetection.so"))
    function = library._Z14facedetect_cnnPhS_iii  # facedetect_cnn(uchar* result, uchar* bgr, int w, int h, int step)
    function.restype = ctypes.POINTER(ctypes.c_int)
    function.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    return function


def yuface_boxes(bgr: np.ndarray, conf: float) -> np.ndarray:
    """(N, 4) int16 face boxes (x, y, w, h) of a BGR uint8 image whose confidence is above conf
    (0-1), as yuface.detect gives them."""
    image = np.ascontiguousarray(bgr, dtype=np.uint8)
    if not hasattr(_buffers, "result"):
        _buffers.result = np.zeros(_BUFFER_BYTES, np.uint8)
    buffer = _buffers.result
    count = _facedetect_cnn()(buffer.ctypes.data, image.ctypes.data, image.shape[1], image.shape[0], image.strides[0])[0]
    # Each face: 16 int16 values, confidence (0-100), x, y, w, h, then landmarks.
    faces = np.frombuffer(buffer, np.int16, count=16 * count, offset=4).reshape(count, 16)
    return faces[faces[:, 0] > conf * 100, 1:5].copy()


class ExpressionModel:
    """Our FER2013 CNN (model/features/expression/train.py) run with onnxruntime on CPU."""

    def __init__(self, path: str | Path = EXPRESSION_MODEL, threads: int = 1):
        self.path = Path(path)
        if not self.path.is_file():
            raise RuntimeError(f"expression model {self.path} is missing; train it with "
                               "`python -m model.features.expression.train --out weights/expression`")
        self.sha256 = sha256(self.path)
        # A 1.6 MB net: the CPU provider is plenty and keeps the GPU for the main model.
        self.session = make_session(self.path, providers=["CPUExecutionProvider"], threads=threads)

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        """(N,48,48) uint8 -> (N,7) probabilities in EXPRESSIONS order."""
        if len(faces) == 0:
            return np.zeros((0, len(EXPRESSIONS)), np.float32)
        x = np.asarray(faces, np.float32)[:, None]
        return self.session.run(None, {"face": x})[0].astype(np.float32)
