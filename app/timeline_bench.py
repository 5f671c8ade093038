"""Timeline speed and memory on a generated long video.

    python -m app.timeline_bench [--minutes 10] [--size 1280x720] [--fps 25]

The video has one face and espeak-ng sentences with pauses, repeated to the length asked.
A fresh process runs the app's Predictor.timeline on the shipped model after a warm-up
on a 10 s clip, and reports wall seconds per minute of video, the real-time factor, the
number of segments, and the peak resident memory (its growth over the warm baseline too).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

PROBE = """
import json, resource, sys, time
from app.config import AppConfig
from app.predictor import Predictor
p = Predictor(sys.argv[1], AppConfig(threads=1, max_timeline_s=3600))
p.timeline(video=sys.argv[2])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
result = p.timeline(video=sys.argv[3])
wall = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"wall_s": wall, "segments": len(result["segments"]), "duration_s": result["duration_s"],
                  "peak_rss_mb": peak / 1024, "warm_rss_mb": base / 1024, "timings": result["timings"]}))
"""
SENTENCES = (
    "I went to see the new film last night and honestly it was wonderful.",
    "The first half was slow and the dialogue was quite boring.",
    "But the ending was brilliant and I would happily watch it again.",
)


def main(argv=None) -> None:
    from model.features.bench.media import make_long_clip, spoken_sentences

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--model-dir", default="weights/mmim-clip")
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.split("x"))
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        talk, _ = spoken_sentences(list(SENTENCES), pause_s=1.5)
        long = np.resize(talk, int(args.minutes * 60 * 16000))
        warm = make_long_clip(Path(tmp) / "warm.mp4", talk[: 16000 * 10], fps=args.fps, size=size)
        clip = make_long_clip(Path(tmp) / "long.mp4", long, fps=args.fps, size=size)
        out = subprocess.run([sys.executable, "-c", PROBE, args.model_dir, str(warm), str(clip)], cwd=repo,
                             capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r.update(video=f"{args.minutes:g} min {args.size} {args.fps:g} fps h264+aac",
             seconds_per_minute=round(r["wall_s"] / (r["duration_s"] / 60), 2),
             real_time_factor=round(r["duration_s"] / r["wall_s"], 1))
    print(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
