"""Front-end speed on this machine: a generated 10 s 640x480 clip with speech.

    python -m model.features.bench.frontend [--runs 5] [--seconds 10]

Prints per-stage medians (decode, audio, face, expression, text) and the
real-time factor (clip seconds / processing seconds), with and without ASR.
Speech recognition runs beside the audio and face stages, so with ASR the total
is less than the sum of the stages.
The clip comes from tests/media.py (espeak-ng speech, a real face photo).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from model.features import FrontEnd, FrontEndConfig
from model.features.speech import DEFAULT_ASR_MODEL

log = logging.getLogger(__name__)
STAGES = ("decode", "audio", "face", "expression", "text")
TEXT = ("I went to see the new film last night and honestly it was wonderful. The actors were great, "
        "the story kept me guessing, and I would happily watch it again with my friends.")


def bench(seconds: float, runs: int, asr_model: str = DEFAULT_ASR_MODEL) -> dict:
    from model.features.bench.media import make_clip

    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "bench.mp4", text=TEXT, seconds=seconds, size=(640, 480), fps=25)
        results = {}
        for asr in (False, True):
            fe = FrontEnd(FrontEndConfig(asr=asr, asr_model=asr_model))
            fe.extract(video=clip)  # warm-up: lazy loads, first-call allocations
            per_stage = {s: [] for s in STAGES}
            totals = []
            for _ in range(runs):
                t0 = time.perf_counter()
                f = fe.extract(video=clip)
                totals.append(time.perf_counter() - t0)
                for s in STAGES:
                    per_stage[s].append(f.timings[s])
            total = statistics.median(totals)
            results["with_asr" if asr else "without_asr"] = {
                "stages_s": {s: round(statistics.median(v), 4) for s, v in per_stage.items()},
                "total_s": round(total, 4),
                "real_time_factor": round(f.quality["duration_s"] / total, 1),
                "frames": f.quality["frames"], "audio_steps": len(f.audio), "text": f.text,
            }
    return {"clip": f"{seconds:g} s 640x480 25 fps h264+aac, espeak-ng speech, one face", "runs": runs,
            "asr_model": asr_model,
            "cpus": len(os.sched_getaffinity(0)), **results}


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--asr-model", default=DEFAULT_ASR_MODEL)
    args = parser.parse_args(argv)
    print(json.dumps(bench(args.seconds, args.runs, args.asr_model), indent=2))


if __name__ == "__main__":
    main()
