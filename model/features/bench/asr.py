"""Word error rate and speed of the speech recogniser on real and generated speech.

    python -m model.features.bench.asr [--models tiny.en base] [--knobs] [--out results.json]

Speech:
- RAVDESS, held-out actors (22-24: every emotion, intensity and repetition, 180 clips),
  whose two sentences are known ("Kids are talking by the door", "Dogs are sitting by
  the door");
- espeak-ng saying 12 fixed sentences (generated here, so espeak-ng must be installed).

WER is word-level Levenshtein distance / reference words, summed over the clips, after
`normalise`: lower case, punctuation dropped (apostrophes kept inside words), fillers
("uh", "um", ...) removed. Speed is the median seconds per 10 s of audio over --runs runs,
on RAVDESS speech joined into one 10 s signal. --knobs adds compute type, beam size,
threads, VAD and the first-window padding for each model, on --knob-clips clips.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import logging
import re
import statistics
from pathlib import Path

import numpy as np

from model.cli import emit_json
from model.files import data_root

log = logging.getLogger(__name__)
DATA = data_root()
HELD_OUT_ACTORS = (22, 23, 24)  # the shipped model's test actors (export/ship/recipe.py)
FILLERS = frozenset({"uh", "um", "umm", "uhm", "er", "erm", "ah", "hmm", "mm", "mhm"})
ESPEAK_SENTENCES = (
    "I loved this film, it was wonderful.",
    "The service at the restaurant was terrible and slow.",
    "My flight was delayed for three hours yesterday.",
    "She gave a brilliant speech at the conference.",
    "I am not sure whether I like the new design.",
    "The weather today is cold and grey.",
    "He is one of my favourite actors ever.",
    "This phone stopped working after two days.",
    "We had a great time at the beach with our friends.",
    "The book was long but the ending made it worth it.",
    "I mean, that was really impressive.",
    "Nobody told me the meeting had been cancelled.",
)


def normalise(text: str) -> list[str]:
    text = text.lower().replace("’", "'")
    text = re.sub(r"[^\w' ]+", " ", text)
    words = [w.strip("'") for w in text.split()]
    return [w for w in words if w and w not in FILLERS]


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def wer(refs: list[str], hyps: list[str]) -> float:
    """Corpus WER: total word edits / total reference words, after `normalise`."""
    pairs = [(normalise(r), normalise(h)) for r, h in zip(refs, hyps, strict=True)]
    words = sum(len(r) for r, _ in pairs)
    return sum(edit_distance(r, h) for r, h in pairs) / max(words, 1)


def ravdess_clips(data: Path = DATA, actors=HELD_OUT_ACTORS) -> list[tuple[np.ndarray, str]]:
    import soundfile as sf

    rows = [r for r in csv.DictReader(open(data / "ravdess" / "metadata.csv", newline="")) if int(r["actor"]) in actors]
    return [(sf.read(data / "ravdess" / r["file"], dtype="float32")[0], r["statement"]) for r in rows]


def espeak_clips() -> list[tuple[np.ndarray, str]]:
    from model.features.bench.media import speech

    return [(speech(s), s) for s in ESPEAK_SENTENCES]


def ten_seconds(clips) -> np.ndarray:
    gap = np.zeros(3200, np.float32)  # 0.2 s between utterances
    joined = np.concatenate([np.concatenate([x, gap]) for x, _ in clips[:6]])
    return np.resize(joined, 160000)


def measure(config, sets: dict[str, list], speed_signal: np.ndarray, runs: int) -> dict:
    from model.features.speech import Transcriber

    t = Transcriber(config)
    t.transcribe(speed_signal)  # warm-up
    out = {"config": dataclasses.asdict(config)}
    for name, clips in sets.items():
        hyps = [t.transcribe(x).text for x, _ in clips]
        out[f"wer_{name}"] = round(wer([r for _, r in clips], hyps), 4)
        out[f"n_{name}"] = len(clips)
    out["s_per_10s"] = round(statistics.median(t.transcribe(speed_signal).seconds for _ in range(runs)), 3)
    log.info("%s", out)
    return out


def main(argv=None) -> None:
    from model.features.speech import AsrConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--knobs", action="store_true", help="also vary compute type, beam, threads, VAD, window")
    parser.add_argument("--knob-clips", type=int, default=48, help="RAVDESS clips (every n-th) for the knob rows")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    ravdess, generated = ravdess_clips(args.data), espeak_clips()
    speed_signal = ten_seconds(ravdess)
    rows = [measure(AsrConfig(model=m), {"ravdess": ravdess, "espeak": generated}, speed_signal, args.runs)
            for m in args.models]
    if args.knobs:
        subset = ravdess[:: max(1, len(ravdess) // args.knob_clips)][: args.knob_clips]
        knobs = [dict(compute_type="float32"), dict(beam_size=5), dict(threads=2), dict(vad=False), dict(min_window_s=30.0)]
        for m in args.models:
            for k in [{}] + knobs:
                row = measure(AsrConfig(model=m, **k), {"ravdess_subset": subset, "espeak": generated}, speed_signal, args.runs)
                rows.append({**row, "knob": k or "default"})
    result = {"wer_normalisation": "lower case; punctuation dropped; fillers removed: " + " ".join(sorted(FILLERS)),
              "ravdess_actors": list(HELD_OUT_ACTORS), "rows": rows}
    emit_json(result, args.out)


if __name__ == "__main__":
    main()
