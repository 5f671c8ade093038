"""Whether an automatic transcript's words may be scored.

The text encoder reads English. Whisper writes something for any speech: on a language it
does not know well it writes English-looking nonsense, Spanish-looking words or another
script, and on hard audio it can loop ("uh, uh, uh, ..."). The words are scored only when
what Whisper itself measured says they are English and read with confidence:
- its probability that the speech is English (not only whether English is the top language);
- the mean log-probability of the tokens it wrote;
- how repetitive the text is: runs of a repeated n-gram are cut to one, and what is left must
  not compress like a loop does (gzip ratio).
Otherwise the transcript is kept for the user, flagged, and the words are not scored; the
voice and the face still are. The thresholds were chosen on the train and valid speakers of
shared/data/speech and generated speech (`python -m model.features.bench.language_gate`).
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

UNSCORED = "transcript uncertain: the words were not scored"


@dataclass
class GateConfig:
    # Chosen on the train + valid speakers (language_gate bench): the loosest pair that keeps the
    # words of >= 98 % of real English clips and scores the fewest clips in other languages.
    min_english_probability: float = 0.25  # Whisper's P(English); English-only models have none and skip it
    min_avg_logprob: float = -1.9          # duration-weighted mean token log-probability of the segments
    max_compression_ratio: float = 2.4    # Whisper's own loop test, on the text after cutting repeats
    max_repeats: int = 3                  # a run of one n-gram (up to 4 words) longer than this is a loop


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


_WORD = re.compile(r"\S+")


def _key(word: str) -> str:
    return re.sub(r"\W", "", word.lower())


def cut_repeats(text: str, max_repeats: int) -> tuple[str, int]:
    """The text with every run of more than max_repeats copies of one n-gram (n = 1..4 words,
    compared without case and punctuation) cut to one copy; and the longest run found."""
    words = _WORD.findall(text)
    keys = [_key(w) for w in words]
    longest, out, i = 1, [], 0
    while i < len(words):
        best_n, best_run = 1, 1
        for n in range(1, 5):
            gram = keys[i : i + n]
            if len(gram) < n or not any(gram):
                break
            run = 1
            while keys[i + run * n : i + (run + 1) * n] == gram:
                run += 1
            if run > best_run:
                best_n, best_run = n, run
        longest = max(longest, best_run)
        if best_run > max_repeats:
            out += words[i : i + best_n]
            i += best_n * best_run
        else:
            out.append(words[i])
            i += 1
    return " ".join(out), longest


def mean_logprob(transcript) -> float | None:
    """The segments' avg_logprob weighted by duration; None without segments."""
    segments = [s for s in transcript.segments if s.end > s.start]
    total = sum(s.end - s.start for s in segments)
    return sum(s.avg_logprob * (s.end - s.start) for s in segments) / total if total else None


def reasons(measured: dict, config: GateConfig = GateConfig(), top: str = "") -> list[str]:
    """Why words with these measurements must not be scored (none: they may be); top names
    Whisper's most likely language for the message."""
    why = []
    p = measured["english_probability"]
    if p is not None and p < config.min_english_probability:
        why.append(f"Whisper's probability that the speech is English is {p:.2f}{top}")
    if measured["avg_logprob"] is not None and measured["avg_logprob"] < config.min_avg_logprob:
        why.append(f"Whisper was unsure of the words (mean log-probability {measured['avg_logprob']:.2f})")
    if measured["compression_ratio"] > config.max_compression_ratio:
        why.append(f"the text repeats itself (compression ratio {measured['compression_ratio']:.1f})")
    return why


def check(transcript, config: GateConfig = GateConfig()) -> tuple[str, str | None, dict]:
    """(the text to score, why it must not be scored or None, what was measured)."""
    text, longest_run = cut_repeats(transcript.text, config.max_repeats)
    measured = {"english_probability": transcript.english_probability, "avg_logprob": mean_logprob(transcript),
                "compression_ratio": round(compression_ratio(text), 3), "longest_repeat": longest_run}
    top = f"; most likely {transcript.language} (p = {transcript.language_probability:.2f})" if transcript.language else ""
    why = reasons(measured, config, top)
    return text, (f"{UNSCORED} ({'; '.join(why)})" if why else None), measured
