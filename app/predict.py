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

from .batch import AUDIO_EXTS
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
                       asr_model=args.asr_model)
    try:
        result = Predictor(config.model_dir, config).predict(text=args.text, audio=audio, video=video)
    except FeatureError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
