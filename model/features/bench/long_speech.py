"""The speech pass on recordings longer than Whisper's 30 s window: time, encoder work, words.

    python -m model.features.bench.long_speech [--runs 3] [--workers 2] [--perturb] [--out after.json] [--compare before.json]

Recordings (16 kHz, built here from `shared/data`):
- `real_known`: the 11 English clips of `speech/english` that ship a transcript (62 s, 0.5 s
  apart), so WER is known;
- `real_60`, `real_90`, `real_120`: valid and test clips of `speech/english` joined with
  0.3, 0.6 and 1.0 s gaps (74, 93 and 122 s); no reference, so only agreement is reported;
- `espeak_sst`: espeak-ng reading 40 SST test sentences 0.4 s apart (206 s), WER known, and
  `espeak_sst_16bit`, the same rounded to 16 bits as a WAV file would hold it.

For each: the speech pass's median seconds over --runs (`Transcriber.analyse`, one thread per
window, --workers windows at a time: `AsrConfig.workers`),
how many encoder calls it made and how many log-mel frames of real audio they encoded against
the frames of speech (1.0: nothing encoded twice), and WER where the words are known.
--perturb adds, for each recording whose words are known, the WER of five slightly different
versions of it (gain x0.9, x0.95, x1.1; 5 or 15 ms of silence in front): Whisper's words move
with such changes, so one version is not enough to compare two decoders.
--compare reads another run's JSON (for example the same file run in an older checkout) and
adds the word edits between the two transcripts.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from model.cli import emit_json
from model.features.media import SAMPLE_RATE
from model.files import data_root

from .asr import edit_distance, normalise, wer

DATA = data_root()


def _english(data: Path, keep) -> list[tuple[np.ndarray, str]]:
    import soundfile as sf

    from model.features.frontend import mono_16k

    root = data / "speech" / "english"
    rows = [r for r in csv.DictReader(open(root / "metadata.csv", newline="")) if keep(r)]
    return [(mono_16k(*sf.read(root / r["file"], dtype="float32")), r["transcript"]) for r in rows]


def _joined(clips, gap_s: float, target_s: float = 0.0, start: int = 0) -> tuple[np.ndarray, int]:
    """Clips (from `start`, round the list) with gap_s of silence after each, until target_s."""
    parts, i, total = [], start, 0.0
    while i == start or (target_s and total < target_s) or (not target_s and i < len(clips)):
        x = clips[i % len(clips)][0]
        parts += [x, np.zeros(int(gap_s * SAMPLE_RATE), np.float32)]
        total, i = total + len(x) / SAMPLE_RATE + gap_s, i + 1
    return np.concatenate(parts), i


def recordings(data: Path = DATA) -> dict[str, tuple[np.ndarray, str | None]]:
    """name -> (16 kHz signal, reference text or None)."""
    from model.features.bench.media import spoken_sentences

    out = {}
    known = _english(data, lambda r: bool(r["transcript"]))
    out["real_known"] = (_joined(known, 0.5)[0], " ".join(t for _, t in known))
    plain = _english(data, lambda r: r["split"] in ("valid", "test"))
    np.random.default_rng(0).shuffle(plain)
    at = 0
    for name, target, gap in (("real_60", 60, 0.3), ("real_90", 90, 0.6), ("real_120", 120, 1.0)):
        signal, at = _joined(plain, gap, target, at)
        out[name] = (signal, None)
    rows = [r for r in csv.DictReader(open(data / "text" / "sst.csv", newline="")) if r["split"] == "test"]
    texts = [rows[i]["text"] for i in np.random.default_rng(1).choice(len(rows), 60, replace=False)]
    texts = [t for t in texts if 6 <= len(t.split()) <= 30][:40]
    out["espeak_sst"] = (spoken_sentences(texts, pause_s=0.4)[0], " ".join(texts))
    # The same, as a 16-bit file holds it: Whisper's words move with a change this small.
    out["espeak_sst_16bit"] = (np.round(out["espeak_sst"][0] * 32767) / 32767, out["espeak_sst"][1])
    return out


@contextmanager
def encoder_calls(transcriber):
    """A list that gets, for each call of the Whisper encoder inside the block, how many log-mel
    frames of real audio (not padding) it encoded."""
    calls, encode = [], transcriber.whisper.encode

    def counting(features):
        calls.append(int(np.count_nonzero(np.abs(features.reshape(-1, *features.shape[-2:])).max(axis=(0, 1)))))
        return encode(features)

    transcriber.whisper.encode = counting
    try:
        yield calls
    finally:
        del transcriber.whisper.encode


def measure(transcriber, signal: np.ndarray, reference: str | None, runs: int) -> dict:
    seconds = []
    with encoder_calls(transcriber) as calls:
        for _ in range(runs):
            calls.clear()
            analysis = transcriber.analyse(signal)
            seconds.append(analysis.seconds)
    text = analysis.transcript.text
    row = {"audio_s": round(len(signal) / SAMPLE_RATE, 1), "speech_s": round(analysis.speech_seconds, 1),
           "seconds": round(statistics.median(seconds), 3), "encoder_calls": len(calls),
           "encoded_over_speech": round(sum(calls) / (analysis.speech_seconds * 100), 3), "text": text}
    if reference:
        row.update(words=len(normalise(reference)), wer=round(wer([reference], [text]), 4))
    return row


PERTURBATIONS = {
    "gain 0.9": lambda x: x * 0.9, "gain 1.1": lambda x: x * 1.1, "gain 0.95": lambda x: x * 0.95,
    "5 ms lead": lambda x: np.concatenate([np.zeros(80, np.float32), x]),
    "15 ms lead": lambda x: np.concatenate([np.zeros(240, np.float32), x]),
}


def perturbed_wer(transcriber, signal: np.ndarray, reference: str) -> dict[str, float]:
    return {name: round(wer([reference], [transcriber.transcribe(f(signal).astype(np.float32)).text]), 4)
            for name, f in PERTURBATIONS.items()}


def main(argv=None) -> None:
    from model.features.speech import AsrConfig, Transcriber

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=AsrConfig.workers, help="windows encoded and decoded at once")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--perturb", action="store_true", help="also WER on five slightly changed versions")
    parser.add_argument("--compare", type=Path, default=None, help="another run's JSON: word edits between the transcripts")
    args = parser.parse_args(argv)
    transcriber = Transcriber(AsrConfig(workers=args.workers))
    transcriber.warm_up()
    result = {}
    for name, (signal, ref) in recordings(args.data).items():
        result[name] = measure(transcriber, signal, ref, args.runs)
        if args.perturb and ref:
            result[name]["wer_perturbed"] = perturbed_wer(transcriber, signal, ref)
    if args.compare:
        other = json.loads(args.compare.read_text())
        for name, row in result.items():
            if name in other:
                theirs = normalise(other[name]["text"])
                row["edits_vs_compare"] = edit_distance(theirs, normalise(row["text"]))
                row["seconds_compare"] = other[name]["seconds"]
    emit_json(result, args.out)


if __name__ == "__main__":
    main()
