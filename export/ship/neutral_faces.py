"""Measure the face alone on neutral faces, for a shipped folder built before the recipe did.

    python -m export.ship.neutral_faces weights/mmim-clip [--data-root ../shared/data]

The same measurement a build makes (`evaluate.neutral_face_metrics`, face clips shaped by the
folder's own recipe), on the folder's graph, which is not touched. metrics.json gets the
"neutral_face_alone" row with when and how it was measured; the card and the manifest follow.
"""
from __future__ import annotations

import argparse
import json
import logging
from datetime import date
from pathlib import Path

from model.files import data_root

from ..runtime import OnnxModel
from .card import write_report
from .evaluate import neutral_face_metrics

log = logging.getLogger("mmim.neutral_faces")


def measure(folder: Path, root: Path) -> dict:
    folder = Path(folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    recipe = metrics["recipe"]
    runtime = OnnxModel(folder, providers=["CPUExecutionProvider"])
    row = neutral_face_metrics(runtime, root, (recipe["face_scale"], recipe["face_frames"]))
    row["added"] = {"date": date.today().isoformat(), "command": f"python -m export.ship.neutral_faces {folder}"}
    metrics["neutral_face_alone"] = row
    write_report(folder, metrics)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--data-root", type=Path, default=None, help="default: the data root model.files finds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(json.dumps(measure(args.folder, args.data_root or data_root()), indent=2))


if __name__ == "__main__":
    main()
