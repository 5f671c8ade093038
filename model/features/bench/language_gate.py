"""How the transcript gate (model/features/transcript_gate.py) decides on real and generated speech.

    python -m model.features.bench.language_gate --out model/experiments/results/language_gate.json

Every clip goes through the front end's speech pass (Silero VAD, Whisper base, one encoder
pass), and the gate's inputs are recorded: Whisper's P(English), the mean token
log-probability, the compression ratio and the longest repeated run. The clips:
- shared/data/speech/english: real plain English, 390 clips, split by speaker;
- shared/data/speech/foreign: real speech in 13 other languages, split by speaker;
- espeak-ng speech in languages Whisper is unsure of (Indonesian, Malay, Swahili, Basque,
  Haitian Creole, Maori, Welsh, Irish, Quechua, Guarani), short clips, and clips that mix an
  English sentence with one of them; the test split uses sentences the other splits never do.
It reports, per split, the share of English clips whose words the gate keeps and the share
of non-English clips whose words it would score. Thresholds are chosen on train + valid;
test is reported, never tuned on.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np

from model.cli import emit_json
from model.features.bench.media import speech
from model.features.transcript_gate import GateConfig, check, reasons
from model.files import data_root

log = logging.getLogger(__name__)
LANGUAGES = ("id", "ms", "sw", "eu", "ht", "mi", "cy", "ga", "qu", "gn")
# Sentences by split: the test split's are never used for tuning.
SENTENCES = {
    "train": ["Saya sangat senang hari ini karena cuaca cerah dan teman datang berkunjung.",
              "Kami pergi ke pasar pagi tadi untuk membeli sayur dan buah segar.",
              "Film itu panjang sekali tetapi ceritanya menarik sampai akhir."],
    "valid": ["Besok kami akan berangkat ke kampung untuk bertemu keluarga besar.",
              "Anak-anak bermain bola di lapangan sampai matahari terbenam."],
    "test": ["Makanan di restoran itu enak dan harganya tidak terlalu mahal.",
             "Dia membaca buku di perpustakaan setiap hari Sabtu sore.",
             "Jalan menuju desa itu rusak setelah hujan deras minggu lalu."],
}
ENGLISH = {"train": "I went to see the new film last night.", "valid": "The weather was lovely this morning.",
           "test": "We walked along the river after dinner."}


def real_clips(root: Path, split: str = "", per_folder: int = 0):
    """(meta, 16 kHz signal) of shared/data/speech: every clip, or those of one split, at most
    per_folder of each folder (evenly spread) when given."""
    import soundfile as sf

    from model.features.frontend import mono_16k

    for folder, english in (("english", True), ("foreign", False)):
        rows = list(csv.DictReader(open(root / "speech" / folder / "metadata.csv", newline="", encoding="utf-8")))
        rows = [r for r in rows if not split or r["split"] == split]
        if per_folder and len(rows) > per_folder:
            rows = [rows[i] for i in np.linspace(0, len(rows) - 1, per_folder).round().astype(int)]
        for row in rows:
            signal, rate = sf.read(root / "speech" / folder / row["file"], dtype="float32")
            yield {"source": f"speech/{folder}", "file": row["file"], "language": row["language"], "split": row["split"],
                   "english": english}, mono_16k(signal, rate)


def generated_clips():
    for split, sentences in SENTENCES.items():
        for i, sentence in enumerate(sentences):
            for language in LANGUAGES:
                meta = {"source": "espeak-ng", "language": language, "split": split, "english": False}
                yield {**meta, "file": f"{language}-{split}{i}"}, speech(sentence, voice=language)
                if i == 0:  # a short clip: its first two seconds
                    yield {**meta, "file": f"{language}-{split}{i}-short"}, speech(sentence, voice=language)[:32000]
                    mixed = np.concatenate([speech(ENGLISH[split], voice="en"), speech(sentence, voice=language)])
                    yield {**meta, "language": f"en+{language}", "file": f"{language}-{split}{i}-mixed"}, mixed


def measure(model: str = "base", clips=None) -> list[dict]:
    """The gate's inputs for each (meta, signal) of `clips` (default: every real and generated clip)."""
    from itertools import chain

    from model.features.speech import AsrConfig, Transcriber

    transcriber = Transcriber(AsrConfig(model=model))
    rows = []
    for meta, signal in chain(real_clips(data_root()), generated_clips()) if clips is None else clips:
        t = transcriber.analyse(signal, transcribe=True).transcript
        _, _, measured = check(t, GateConfig(max_compression_ratio=np.inf, min_avg_logprob=-np.inf,
                                             min_english_probability=0.0))
        rows.append({**meta, "text": t.text, "top_language": t.language, "top_probability": t.language_probability,
                     **measured})
    return rows


def decide(row: dict, gate: GateConfig) -> bool:
    """Whether the gate scores this clip's words."""
    return bool(row["text"]) and not reasons(row, gate)


def groups(rows: list[dict]) -> dict[str, list[dict]]:
    """English (with words), other languages, and clips that mix an English sentence with another language."""
    return {"english": [r for r in rows if r["english"] and r["text"]],
            "other": [r for r in rows if not r["english"] and "+" not in r["language"]],
            "mixed": [r for r in rows if "+" in r["language"]]}


def rates(rows: list[dict], gate: GateConfig) -> dict:
    """Per split: the share of English clips whose words are kept, and of the others whose words are scored."""
    out = {}
    for split in ("train", "valid", "test"):
        g = groups([r for r in rows if r["split"] == split])
        share = lambda group: round(float(np.mean([decide(r, gate) for r in group])), 4) if group else None  # noqa: E731
        out[split] = {"english_clips": len(g["english"]), "english_kept": share(g["english"]),
                      "other_clips": len(g["other"]), "other_scored": share(g["other"]),
                      "mixed_clips": len(g["mixed"]), "mixed_scored": share(g["mixed"])}
    return out


def tune(rows: list[dict]) -> GateConfig:
    """On train + valid: the thresholds that score the fewest non-English clips while keeping
    at least 98 % of English ones, the loosest such."""
    g = groups([r for r in rows if r["split"] in ("train", "valid")])
    best = None
    for p in np.round(np.arange(0.05, 0.96, 0.05), 2):
        for lp in np.round(np.arange(-2.0, -0.19, 0.1), 2):
            gate = GateConfig(min_english_probability=float(p), min_avg_logprob=float(lp))
            kept = np.mean([decide(r, gate) for r in g["english"]])
            if kept < 0.98:
                continue
            key = (np.mean([decide(r, gate) for r in g["other"]]), np.mean([decide(r, gate) for r in g["mixed"]]), -kept, -p, -lp)
            if best is None or key < best[0]:
                best = (key, gate)
    return best[1] if best else GateConfig()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--measured", type=Path, help="tune again from an earlier --out, without running Whisper")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    rows = json.loads(args.measured.read_text())["clips"] if args.measured else measure(args.model)
    chosen = tune(rows)
    emit_json({"chosen": asdict(chosen), "default": asdict(GateConfig()), "with_chosen": rates(rows, chosen),
               "with_default": rates(rows, GateConfig()), "clips": rows}, args.out)


if __name__ == "__main__":
    main()
