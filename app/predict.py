"""`python -m app.predict CLIP [--text "..."]`: the app's predictor on the command line, JSON to stdout.

CLIP is a video or an audio file (by extension); --audio/--video give both
explicitly. Exit status 2 with the message on stderr for a bad input.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from model.features.media import AUDIO_EXTS

from .config import AppConfig


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.predict", description=__doc__.splitlines()[0])
    parser.add_argument("clip", nargs="?", help="a video or audio file")
    parser.add_argument("--text", default=None, help="transcript; without it the speech recogniser writes one")
    parser.add_argument("--audio", default=None, help="audio file (overrides a video's own sound)")
    parser.add_argument("--video", default=None, help="video file")
    parser.add_argument("--model-dir", default=AppConfig.model_dir)
    parser.add_argument("--max-duration-s", type=float, default=AppConfig.max_duration_s)
    parser.add_argument("--max-upload-mb", type=float, default=AppConfig.max_upload_mb)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--timeline", action="store_true", help="a whole video: one result per segment")
    parser.add_argument("--csv", default=None, help="with --timeline: also write one row per segment here")
    parser.add_argument("--max-timeline-s", type=float, default=AppConfig.max_timeline_s)
    parser.add_argument("--context", type=int, default=AppConfig.context,
                        help="with --timeline: previous segments read with each one (-1: the model's setting)")
    parser.add_argument("--asr-model", default=AppConfig.asr_model,
                        help="speech recogniser: tiny.en, base or a local CTranslate2 Whisper directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    from model.features import FeatureError

    from .predictor import Predictor

    audio, video = args.audio, args.video
    if args.clip:
        if Path(args.clip).suffix.lower() in AUDIO_EXTS:
            audio = audio or args.clip
        else:
            video = video or args.clip
    config = AppConfig(model_dir=args.model_dir, max_duration_s=args.max_duration_s, max_upload_mb=args.max_upload_mb, threads=args.threads,
                       asr_model=args.asr_model, max_timeline_s=args.max_timeline_s, context=args.context)
    try:
        predictor = Predictor(config.model_dir, config)
        if args.timeline:
            result = predictor.timeline(audio=audio, video=video)
            if args.csv:
                write_segments_csv(result, Path(args.csv))
        else:
            result = predictor.predict(text=args.text, audio=audio, video=video)
    except FeatureError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


SEGMENT_COLUMNS = ("start", "end", "source", "text", "score", "label", "shapley_text", "shapley_audio", "shapley_visual", "flags")


def write_segments_csv(result: dict, path: Path) -> None:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=SEGMENT_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for seg in result["segments"]:
            row = {k: seg.get(k) for k in ("start", "end", "source", "text", "score", "label")}
            for m, d in seg.get("diagnostics", {}).items():
                row[f"shapley_{m}"] = d.get("shapley") if isinstance(d.get("shapley"), float) else ""
            row["flags"] = "; ".join(seg.get("flags", []))
            w.writerow(row)


if __name__ == "__main__":
    sys.exit(main())
