"""Expression accuracy on FER2013 PrivateTest, directly and through the app's face path.

    python -m model.features.expression.evaluate [--out weights/expression/metrics.json]

App-style: each 48x48 test face is upscaled 3x (bicubic) and given a 72 px
replicated border (detectors need context around FER's tight crops), then goes
through FrontEnd.visual_features: face detection (the front end's detector) -> crop -> CNN. Reports the
detection rate, accuracy on detected faces, and the direct 48x48 accuracy on
the same detected subset (so the crop's own effect is visible). Adds the
result to metrics.json under "app_crops".
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from model.features import FrontEnd, FrontEndConfig
from model.features.fer import load_fer
from model.features.visual import EXPRESSION_COLUMNS, EXPRESSION_MODEL, FACE_PRESENT

log = logging.getLogger(__name__)
UPSCALE, BORDER = 3, 72


def app_frame(face48: np.ndarray) -> np.ndarray:
    import cv2

    up = cv2.resize(face48, (48 * UPSCALE, 48 * UPSCALE), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(cv2.copyMakeBorder(up, BORDER, BORDER, BORDER, BORDER, cv2.BORDER_REPLICATE),
                        cv2.COLOR_GRAY2RGB)


def evaluate(batch: int = 256) -> dict:
    fe = FrontEnd(FrontEndConfig(asr=False))
    d = load_fer()
    test = d["split"] == "test"
    x, y, blank = d["x"][test], d["y"][test], d["blank"][test]
    direct = np.concatenate([fe.expression(x[i:i + batch]) for i in range(0, len(x), batch)]).argmax(1)
    found = np.zeros(len(x), bool)
    app_pred = np.full(len(x), -1)
    for i in range(0, len(x), batch):
        feats, _ = fe.visual_features([app_frame(f) for f in x[i:i + batch]], independent=True)
        found[i:i + batch] = feats[:, FACE_PRESENT] == 1
        app_pred[i:i + batch] = np.where(feats[:, FACE_PRESENT] == 1, feats[:, EXPRESSION_COLUMNS].argmax(1), -1)
    keep = blank == 0
    det = found & keep
    return {
        "private_test_acc": float((direct == y).mean()),
        "private_test_images": int(len(x)),
        "app_crops": {
            "method": f"{UPSCALE}x bicubic upscale + {BORDER} px replicated border -> {fe.detector.cfg.backend} -> crop -> CNN",
            "images": int(keep.sum()),
            "detection_rate": float(det.sum() / keep.sum()),
            "acc_on_detected": float((app_pred[det] == y[det]).mean()),
            "direct_acc_same_faces": float((direct[det] == y[det]).mean()),
            "acc_all_misses_wrong": float((app_pred[keep] == y[keep]).mean()),
        },
    }


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(EXPRESSION_MODEL.parent / "metrics.json"))
    args = parser.parse_args(argv)
    result = evaluate()
    out = Path(args.out)
    metrics = json.loads(out.read_text()) if out.is_file() else {}
    metrics["app_crops"] = result["app_crops"]
    out.write_text(json.dumps(metrics, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
