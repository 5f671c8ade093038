"""The transcript gate: repetition loops are cut, and words Whisper did not read as English with
confidence are not scored (known answers on constructed transcripts; real speech, held out)."""
import csv

import numpy as np
import pytest

from model.features.speech import Segment, Transcript
from model.features.transcript_gate import UNSCORED, check, compression_ratio, cut_repeats
from tests.conftest import DATA


def transcript(text: str, english: float | None = 0.99, logprob: float = -0.2, language: str = "en") -> Transcript:
    return Transcript(text, [Segment(0.0, 3.0, text, logprob, 0.01)], language, 0.99 if language == "en" else 0.6,
                      english_probability=english)


def test_a_repetition_loop_is_cut_to_one_copy():
    looped = "Montreal " + "uh, " * 22 + "forced aligner"
    text, longest = cut_repeats(looped, max_repeats=3)
    assert text == "Montreal uh, forced aligner" and longest == 22
    assert compression_ratio(looped) > 2.4 >= compression_ratio(text)
    # Runs of longer n-grams too, compared without case and punctuation; short runs stay.
    assert cut_repeats("I like it. I like it. i like it, I like it. I like it.", 3)[0] == "I like it."
    assert cut_repeats("very very good", 3) == ("very very good", 2)


def test_clear_english_is_scored_and_the_loop_is_cut():
    text, why, measured = check(transcript("the film was " + "really " * 8 + "good"))
    assert why is None and text == "the film was really good" and measured["longest_repeat"] == 8


@pytest.mark.parametrize("case, reason", [
    (dict(english=0.12, language="jw"), "probability that the speech is English is 0.12; most likely jw"),
    (dict(logprob=-2.4), "unsure of the words"),
])
def test_unsure_language_or_words_are_not_scored(case, reason):
    text = "Yandresendotcinang, Pakalendotcinang"
    _, why, _ = check(transcript(text, **case))
    assert why.startswith(UNSCORED) and reason in why


def test_a_loop_that_survives_cutting_is_not_scored():
    # Alternating fillers are no run of one n-gram, but they compress like a loop.
    text = " ".join(["uh", "um", "uh", "uh", "um", "um"] * 12)
    assert check(transcript(text))[1] is not None and "repeats itself" in check(transcript(text))[1]


def test_an_english_only_model_is_gated_on_confidence_alone():
    assert check(transcript("a fine day", english=None))[1] is None
    assert check(transcript("a fine day", english=None, logprob=-2.4))[1] is not None


# ---------------------------------------------------------------- real speech (Whisper base)

@pytest.fixture(scope="module")
def asr():
    from model.features.speech import AsrConfig, Transcriber

    return Transcriber(AsrConfig(model="base"))


def _held_out(folder: str) -> list[dict]:
    rows = csv.DictReader(open(DATA / "speech" / folder / "metadata.csv", newline="", encoding="utf-8"))
    return [r for r in rows if r["split"] == "test"]


def _signal(folder: str, row: dict) -> np.ndarray:
    import soundfile as sf

    from model.features.frontend import mono_16k

    x, rate = sf.read(DATA / "speech" / folder / row["file"], dtype="float32")
    return mono_16k(x, rate)


@pytest.mark.slow  # Whisper on a held-out slice of real English (the bench runs all of it)
def test_held_out_real_english_keeps_its_words(asr):
    rows = _held_out("english")[::3]
    kept = [check(t)[1] is None for row in rows if (t := asr.transcribe(_signal("english", row))).text]
    assert len(kept) >= 18 and all(kept)


@pytest.mark.slow  # Whisper on held-out real and generated foreign speech
def test_held_out_foreign_speech_is_not_scored(asr):
    from model.features.bench.language_gate import LANGUAGES, SENTENCES
    from model.features.bench.media import speech

    signals = [_signal("foreign", row) for row in _held_out("foreign")]
    signals += [speech(SENTENCES["test"][0], voice=language) for language in LANGUAGES]
    scored = [bool(t.text) and check(t)[1] is None for t in map(asr.transcribe, signals)]
    assert len(scored) >= 15 and np.mean(scored) <= 0.05
