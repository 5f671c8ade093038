"""Speed of one clip through the app's whole path, on clips made of real recordings.

    python -m app.bench [--runs 3] [--clips short,long] [--sizes 480x360,...] [--words no,yes] [--out F]

The clips: a real voice (short: a held-out RAVDESS actor, about 3 s; long: 12 s of a
LibriSpeech reader from the test speakers of shared/data/speech) under a real face photo
(skimage's astronaut) that drifts and zooms a little from frame to frame as a talking head
does, at 25 fps, in 480x360, 640x480 and 1280x720, H.264 + AAC. Each (length, size, words
given or not) runs in a fresh process: the start-up (process start to a ready predictor,
warm-up included), the first call, then the median of `runs` warm calls, with the stage
medians the predictor reports and the real-time factor (clip seconds / call seconds).
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

PROBE = """
import json, statistics, sys, time
t0 = time.perf_counter()
from app.config import AppConfig
from app.predictor import Predictor
p = Predictor(sys.argv[1], AppConfig(threads=int(sys.argv[4])))
start = time.perf_counter() - t0
text = sys.argv[3] or None
calls = []
for _ in range(1 + int(sys.argv[5])):
    a = time.perf_counter()
    r = p.predict(video=sys.argv[2], text=text)
    calls.append((time.perf_counter() - a, r["timings"]))
warm = [c for c, _ in calls[1:]]
stages = {k: statistics.median(t[k] for _, t in calls[1:]) for k in calls[1][1]}
print(json.dumps({"startup_s": start, "first_s": calls[0][0], "warm_s": statistics.median(warm), "stages": stages,
                  "torch_loaded": "torch" in sys.modules}))
"""
SIZES = ((480, 360), (640, 480), (1280, 720))
WORDS = "I went to see the new film last night and honestly it was wonderful."


def real_voices(root: Path) -> dict[str, np.ndarray]:
    """A short real voice (RAVDESS, actor 23, happy) and 12 s of a LibriSpeech test speaker, 16 kHz."""
    import soundfile as sf

    from model.features.frontend import mono_16k

    short, rate = sf.read(root / "ravdess" / "audio" / "Actor_23" / "03-01-03-02-01-01-23.flac", dtype="float32")
    rows = [r for r in csv.DictReader(open(root / "speech" / "english" / "metadata.csv", newline="", encoding="utf-8"))
            if r["split"] == "test" and float(r["duration_s"]) >= 12.5 and r["file"].endswith(".flac")]
    long, long_rate = sf.read(root / "speech" / "english" / rows[0]["file"], dtype="float32")
    return {"short": mono_16k(short, rate), "long": mono_16k(long, long_rate)[: 12 * 16000]}


def talking_head(size: tuple[int, int], n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The face photo, drifting by a few pixels and zooming by a few per cent over the clip."""
    import cv2

    from model.features.bench.media import face_frame

    base = face_frame(size)
    w, h = size
    frames, x, y, z = [], 0.0, 0.0, 1.0
    for _ in range(n):
        x, y = np.clip(x + rng.normal(0, 0.8), -12, 12), np.clip(y + rng.normal(0, 0.5), -8, 8)
        z = float(np.clip(z + rng.normal(0, 0.004), 0.95, 1.05))
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, z)
        m[:, 2] += (x, y)
        frames.append(cv2.warpAffine(base, m, (w, h), borderMode=cv2.BORDER_REPLICATE))
    return frames


def main(argv=None) -> None:
    from model.features.bench.media import write_media
    from model.files import data_root

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="warm calls per clip (after the first)")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: one per usable core)")
    parser.add_argument("--model-dir", default="weights/mmim-clip")
    parser.add_argument("--clips", default="short,long", help="which clips: short, long or both")
    parser.add_argument("--sizes", default=",".join(f"{w}x{h}" for w, h in SIZES), help="frame sizes, e.g. 480x360")
    parser.add_argument("--words", default="no,yes", help="text given: no (Whisper transcribes), yes, or both")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    repo = Path(__file__).resolve().parents[1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
        texts = [{"no": "", "yes": WORDS}[w] for w in args.words.split(",")]
        voices = {k: v for k, v in real_voices(data_root()).items() if k in args.clips.split(",")}
        for length, voice in voices.items():
            seconds = len(voice) / 16000
            for size in sizes:
                clip = Path(tmp) / f"{length}-{size[0]}x{size[1]}.mp4"
                write_media(clip, frames=talking_head(size, int(seconds * 25), np.random.default_rng(0)), fps=25.0,
                            audio=voice)
                for words in texts:
                    out = subprocess.run([sys.executable, "-c", PROBE, args.model_dir, str(clip), words, str(args.threads),
                                          str(args.runs)], cwd=repo, capture_output=True, text=True, check=True)
                    r = json.loads(out.stdout.strip().splitlines()[-1])
                    rows.append({"clip": length, "seconds": round(seconds, 2), "size": f"{size[0]}x{size[1]}",
                                 "text_given": bool(words), **r, "warm_rtf": seconds / r["warm_s"],
                                 "first_over_warm": r["first_s"] / r["warm_s"]})
                    print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
