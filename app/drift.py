"""How far the served scores move between two versions, against how far they move by themselves.

    python -m app.drift [--split test] [--min-seconds 0] --out after.json [--compare before.json]

Scores every clip of a split of `speech/english` (real read and spontaneous speech; test by
default) through `Predictor.predict` with Whisper transcribing, twice: as it is, and with 10 ms
of silence in front. The second is the noise floor: Whisper's words and the voice move with
such a change, so a new front end or model is within tolerance on these clips when it moves
the scores no more than 10 ms of silence does. Run it in both checkouts (copy this file into
the older one) and pass the older run's JSON to --compare: it prints, for the change between
the versions and for the 10 ms shift, the mean, median, 90th percentile and largest |score
change|, the same for the voice's Shapley value, how many transcripts changed and their word
edit rate, and WER where the split ships transcripts.
"""
from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

import numpy as np

from model.features.bench.asr import wer
from model.files import data_root

from .predictor import Predictor

SHIFT_S = 0.01


def clips(split: str, min_seconds: float) -> list[dict]:
    root = data_root() / "speech" / "english"
    rows = csv.DictReader(open(root / "metadata.csv", newline=""))
    return [{**r, "path": root / r["file"]} for r in rows if r["split"] == split and float(r["duration_s"]) > min_seconds]


def shifted(path: Path, directory: str) -> Path:
    """The clip with SHIFT_S of digital silence in front, as a float WAV (nothing else changes)."""
    import soundfile as sf

    from model.features.decode import decode
    from model.features.media import SAMPLE_RATE

    audio = decode(path, want_video=False).audio
    out = Path(directory) / "shifted.wav"
    sf.write(out, np.concatenate([np.zeros(round(SHIFT_S * SAMPLE_RATE), np.float32), audio]), SAMPLE_RATE, subtype="FLOAT")
    return out


def score(predictor: Predictor, path: Path) -> dict:
    r = predictor.predict(audio=path)
    return {"score": r["score"], "voice_shapley": r["diagnostics"]["audio"]["shapley"], "transcript": r["transcript"]}


def change(rows: list[dict], a: str, b: str, reference: list[dict] | None = None) -> dict:
    """How each row's result `b` differs from result `a` of the same row, or of the same clip's
    row in `reference` (another version's run)."""
    left = reference or rows
    d = np.abs([r[b]["score"] - l[a]["score"] for r, l in zip(rows, left, strict=True)])
    v = np.abs([r[b]["voice_shapley"] - l[a]["voice_shapley"] for r, l in zip(rows, left, strict=True)])
    edits = [wer([l[a]["transcript"]], [r[b]["transcript"]]) for r, l in zip(rows, left, strict=True)]
    return {"score_abs_mean": float(d.mean()), "score_abs_median": float(np.median(d)),
            "score_abs_p90": float(np.percentile(d, 90)), "score_abs_max": float(d.max()),
            "voice_shapley_abs_mean": float(v.mean()), "voice_shapley_abs_median": float(np.median(v)),
            "transcripts_changed": int(sum(e > 0 for e in edits)), "word_edit_rate_mean": float(np.mean(edits))}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"))
    parser.add_argument("--min-seconds", type=float, default=0.0, help="only clips longer than this")
    parser.add_argument("--model-dir", default="weights/mmim-clip")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compare", type=Path, help="another run's JSON (the same clips)")
    args = parser.parse_args(argv)
    predictor = Predictor(args.model_dir)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for c in clips(args.split, args.min_seconds):
            rows.append({"file": c["file"], "seconds": float(c["duration_s"]), "reference": c["transcript"],
                         "as_is": score(predictor, c["path"]), "shifted": score(predictor, shifted(c["path"], tmp))})
            print(json.dumps({"file": c["file"], "score": rows[-1]["as_is"]["score"], "shifted": rows[-1]["shifted"]["score"]}), flush=True)
    summary = {"clips": len(rows), "shift_10ms": change(rows, "as_is", "shifted")}
    known = [r for r in rows if r["reference"].strip()]
    if known:
        summary["wer"] = wer([r["reference"] for r in known], [r["as_is"]["transcript"] for r in known])
    if args.compare:
        before = json.loads(args.compare.read_text())
        if [r["file"] for r in before["rows"]] != [r["file"] for r in rows]:
            raise SystemExit(f"{args.compare} scored other clips: use the same --split and --min-seconds")
        summary["versus_before"] = change(rows, "as_is", "as_is", before["rows"])
        summary["before_shift_10ms"] = before["summary"]["shift_10ms"]
    args.out.write_text(json.dumps({"split": args.split, "min_seconds": args.min_seconds, "summary": summary, "rows": rows}, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
