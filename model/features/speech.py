"""Speech: automatic transcripts with Whisper (faster-whisper), and the encoder frames the voice
stream is pooled from, both from one encoder pass: every window of speech is encoded once."""
from __future__ import annotations

import dataclasses
import functools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np

from model.features.media import SAMPLE_RATE

DEFAULT_ASR_MODEL = "base"
_BLAS_LOCK = threading.Lock()


@contextmanager
def one_blas_thread():
    """numpy's BLAS on one thread, for the log-mel product: OpenBLAS splits it over threads on
    some CPUs (AVX2 Zen 3), which moves it by about 1e-7, and Whisper's int8 encoder can turn
    that into 0.15 in the voice stream. One thread everywhere (Dask workers already have one)
    makes the features the same in every process. The lock keeps concurrent passes from
    restoring each other's setting."""
    with _BLAS_LOCK, _threadpools().limit(limits=1, user_api="blas"):
        yield


@functools.cache
def _threadpools():
    """The process's thread pools, found once (the search reads every loaded library)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()



@dataclass
class AsrConfig:
    model: str = DEFAULT_ASR_MODEL    # tiny.en | base | a local CTranslate2 Whisper directory
    compute_type: str = "int8"        # CTranslate2 weights; int8 was as accurate as float32 and faster (asr_bench)
    threads: int = 1                  # CTranslate2 intra-op threads: 2 collapse under load on 2 cores
    # Windows of speech (30 s each) encoded and decoded at once, one model replica each:
    # past 30 s the speech pass then gets the second core whenever it is free (the timeline's
    # faces finish first). About 100 MB more resident; no change below 30 s of speech.
    workers: int = 2
    beam_size: int = 1                # greedy: beam 5 cost about 1.5x for no WER gain on our speech
    vad: bool = True                  # Silero VAD: decode speech only, so silence cannot become words
    max_no_speech_prob: float = 0.6   # segments Whisper itself thinks are not speech are dropped
    # Whisper pads every window to 30 s and the encoder cost is per window, so a 3 s clip
    # pays for 30 s. A partial window is padded to max(min_window_s, its audio +
    # window_margin_s) instead: 4x faster on RAVDESS at the same WER (asr_bench). With less
    # padding the decoder makes up a last sentence in the padding, or repeats one; those
    # come out faster than anyone speaks and `max_words_per_s` drops them.
    min_window_s: float = 10.0
    window_margin_s: float = 5.0
    max_words_per_s: float = 12.0


# Whisper's window: 30 s of log-mel frames. Speech longer than that is cut into windows at
# joins between the VAD's chunks, and the VAD splits speech longer than a window at its last
# pause, so that no word straddles two windows.
WINDOW_S = 30.0


@dataclass
class Word:
    word: str
    start: float                      # seconds from the start of the clip
    end: float
    probability: float


@dataclass
class Segment:
    start: float
    end: float
    text: str
    avg_logprob: float                # mean token log-probability: the decoder's confidence
    no_speech_prob: float             # Whisper's probability that the window holds no speech
    words: list[Word] = field(default_factory=list)


@dataclass
class Transcript:
    text: str                         # "" when nothing was recognised; `reason` then says why
    segments: list[Segment]
    language: str | None              # detected language (always "en" for an English-only model)
    language_probability: float | None  # None when the model cannot detect languages
    reason: str | None = None
    english_probability: float | None = None  # Whisper's P(English); None for an English-only model
    model: str = ""
    seconds: float = 0.0

    @property
    def english(self) -> bool:
        return self.language in (None, "en")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SpeechAnalysis:
    """One pass of Whisper over a clip: the encoder frames (the voice stream) and, when
    asked for, the words decoded from the same encoder output."""
    frames: np.ndarray                # (T, d) float32 encoder outputs, 50 per second of kept speech
    speech_seconds: float             # speech the VAD kept (all of the audio without VAD)
    audio_seconds: float
    reason: str | None = None         # why there are no frames (no speech, too short)
    transcript: Transcript | None = None
    seconds: float = 0.0              # the whole pass
    encode_seconds: float = 0.0       # VAD and encoder only (the rest is decoding)
    frame_times: np.ndarray | None = None  # (T,) start of each frame, seconds in the original audio
    speech_chunks_s: list[tuple[float, float]] = field(default_factory=list)  # what the VAD kept


class Transcriber:
    """Speech to text with word timestamps, on a Whisper model from a wheel (never downloaded).

    One instance per process is enough: CTranslate2 models are thread-safe (calls
    from several threads queue inside it, and it releases the GIL while it works),
    and everything else here is per call. The pipeline is faster-whisper's own
    decoding loop, driven so that the first window is encoded once and serves both
    language detection and decoding (its `transcribe` encodes that window twice).
    """

    def __init__(self, config: AsrConfig | None = None):
        from model.features import whisper_models

        self.config = config or AsrConfig()
        self.model_dir = whisper_models.resolve(self.config.model)
        self.whisper = _short_window_whisper()(str(self.model_dir), device="cpu", compute_type=self.config.compute_type,
                                               cpu_threads=self.config.threads, num_workers=self.config.workers,
                                               local_files_only=True)
        self._windows = ThreadPoolExecutor(max_workers=self.config.workers, thread_name_prefix="speech-window")
        self.whisper.min_window_frames = round(self.config.min_window_s * self.whisper.frames_per_second)
        self.whisper.margin_frames = round(self.config.window_margin_s * self.whisper.frames_per_second)
        # Width of the encoder frames (512 for base, 384 for tiny): one encoding of silence.
        mels = self.whisper.feature_extractor.mel_filters.shape[0]
        self.dim = int(self.whisper.encode(np.zeros((mels, 1000), np.float32)).shape[-1])

    @property
    def multilingual(self) -> bool:
        return bool(self.whisper.model.is_multilingual)

    def warm_up(self) -> None:
        """Run every step once on one second of quiet noise: the VAD, the encoder and, through
        it, language detection and the decoder, whose first run allocates what later runs reuse."""
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        noise = (0.01 * np.random.default_rng(0).standard_normal(SAMPLE_RATE)).astype(np.float32)
        get_speech_timestamps(noise, VadOptions())
        features = self.whisper.feature_extractor(noise)
        self._decode(features, [(0, features.shape[-1] - 1)], [self.whisper.encode(pad_or_trim(features))], None)

    def transcribe(self, signal_16k: np.ndarray) -> Transcript:
        return self.analyse(signal_16k, transcribe=True).transcript

    def __call__(self, signal_16k: np.ndarray) -> str:
        return self.transcribe(signal_16k).text

    def analyse(self, signal_16k: np.ndarray, transcribe: bool = True) -> SpeechAnalysis:
        """Encode the clip's speech once; decode words from that encoding if `transcribe`.

        Speech up to 30 s is one window. Longer speech is cut into windows of at most 30 s at
        joins between the VAD's chunks (`speech_windows`); each window is encoded once, and
        its encoding gives both its voice frames and its words, decoded as a clip of its own.
        faster-whisper's own loop would instead re-encode from wherever its decoder stopped
        (29 s of a 30 s window, say), encoding most of the speech twice.
        """
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

        t0 = time.perf_counter()
        c, fw = self.config, self.whisper
        signal = np.ascontiguousarray(signal_16k, dtype=np.float32)
        audio_seconds = len(signal) / SAMPLE_RATE
        chunks, reason = None, None
        if len(signal) < SAMPLE_RATE // 10:
            reason = "the audio is shorter than 0.1 s"
        elif c.vad:
            chunks = get_speech_timestamps(signal, VadOptions(max_speech_duration_s=WINDOW_S))
            reason = None if chunks else "no speech: voice activity detection found none"
        if reason:
            result = SpeechAnalysis(np.zeros((0, self.dim), np.float32), 0.0, audio_seconds, reason=reason)
            if transcribe:
                result.transcript = Transcript("", [], None, None, reason=reason, model=c.model)
        else:
            speech = np.concatenate(collect_chunks(signal, chunks)[0]) if chunks else signal
            with one_blas_thread():
                features = fw.feature_extractor(speech)
            joins = chunk_joins([ch["end"] - ch["start"] for ch in chunks], fw.feature_extractor.hop_length) if chunks else []
            content = features.shape[-1] - 1  # the extractor adds one frame past the end
            windows = speech_windows(content, joins, fw.feature_extractor.nb_max_frames)
            # The last window keeps the extra frame, as the voice's training features did.
            encoded = self._map(lambda w: fw.encode(pad_or_trim(features[:, w[0] : w[1] + (w[1] == content)])), windows)
            frames = [np.array(e)[0, : max(1, -(-(b - a) // 2))] for e, (a, b) in zip(encoded, windows)]  # 2 mel frames each
            result = SpeechAnalysis(np.concatenate(frames).astype(np.float32), len(speech) / SAMPLE_RATE, audio_seconds)
            result.frame_times = _original_times(len(result.frames), chunks)
            result.speech_chunks_s = ([(ch["start"] / SAMPLE_RATE, ch["end"] / SAMPLE_RATE) for ch in chunks]
                                      if chunks else [(0.0, audio_seconds)])
            result.encode_seconds = time.perf_counter() - t0
            if transcribe:
                result.transcript = self._decode(features, windows, encoded, chunks)
        result.seconds = time.perf_counter() - t0
        if result.transcript is not None:
            result.transcript.model, result.transcript.seconds = c.model, result.seconds
        return result

    def _decode(self, features: np.ndarray, windows: list[tuple[int, int]], encoded: list, chunks) -> Transcript:
        """Words from each window's encoding; the language is detected once, on the first window."""
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import restore_speech_timestamps

        c, fw = self.config, self.whisper
        english = None
        if self.multilingual:
            ranked = fw.model.detect_language(encoded[0])[0]
            language, probability = ranked[0][0][2:-2], float(ranked[0][1])
            english = float(dict(ranked).get("<|en|>", 0.0))
        else:
            language, probability = "en", None
        tokenizer = Tokenizer(fw.hf_tokenizer, self.multilingual, task="transcribe", language=language)
        options = self._options(tokenizer)

        def words(window, encoder_output) -> list:
            a, b = window
            shift = a * fw.feature_extractor.time_per_frame
            return [_shifted(s, shift) for s in
                    fw.generate_segments(features[:, a : b + 1], tokenizer, options, False, encoder_output)]

        segments = [s for window in self._map(words, windows, encoded) for s in window]
        if chunks:
            segments = restore_speech_timestamps(segments, chunks, SAMPLE_RATE)
        kept, dropped = [], 0
        for s in segments:
            if s.no_speech_prob > c.max_no_speech_prob:
                dropped += 1
                continue
            words = [Word(w.word.strip(), round(float(w.start), 3), round(float(w.end), 3), round(float(w.probability), 4))
                     for w in (s.words or []) if w.word.strip()]
            if too_fast(words, c.max_words_per_s):
                continue
            kept.append(Segment(round(float(s.start), 3), round(float(s.end), 3), s.text.strip(),
                                round(float(s.avg_logprob), 4), round(float(s.no_speech_prob), 4), words))
        text = " ".join(s.text for s in kept if s.text).strip()
        reason = None
        if not text:
            reason = (f"no words: Whisper judged the sound not to be speech (no-speech probability above "
                      f"{c.max_no_speech_prob})" if dropped else "no words recognised in the speech")
        return Transcript(text, kept, language, probability, reason=reason, english_probability=english)

    def _map(self, function, *items) -> list:
        """function over the windows, in order; in parallel where there are several."""
        if len(items[0]) == 1:
            return [function(*args) for args in zip(*items)]
        return list(self._windows.map(function, *items))

    def _options(self, tokenizer):
        from faster_whisper.transcribe import TranscriptionOptions, get_suppressed_tokens

        return TranscriptionOptions(
            beam_size=self.config.beam_size, best_of=1, patience=1.0, length_penalty=1.0, repetition_penalty=1.0,
            no_repeat_ngram_size=0, log_prob_threshold=-1.0, no_speech_threshold=self.config.max_no_speech_prob,
            compression_ratio_threshold=2.4,
            # Each clip stands alone, and temperature 0 only: sampling fallbacks would make the
            # same clip give different words on different calls.
            condition_on_previous_text=False, prompt_reset_on_temperature=0.5, temperatures=[0.0],
            initial_prompt=None, prefix=None, suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]), without_timestamps=False,
            max_initial_timestamp=1.0, word_timestamps=True, prepend_punctuations="\"'“¿([{-",
            append_punctuations="\"'.。,，!！?？:：”)]}、", multilingual=False, max_new_tokens=None,
            clip_timestamps="0", hallucination_silence_threshold=None, hotwords=None,
        )


def too_fast(words: list[Word], max_words_per_s: float) -> bool:
    """Whether a segment's words come faster than anyone speaks: then they were not heard but
    made up, at the end of a window or in a loop ("This is the first time I've ever seen this."
    squeezed into the last 0.3 s). Fast speech is 5-7 words a second; one or two words are
    never judged, since a single word's timestamps can be squeezed too."""
    if len(words) < 3:
        return False
    return len(words) > max_words_per_s * max(words[-1].end - words[0].start, 1e-3)


def chunk_joins(chunk_samples: list[int], hop: int) -> np.ndarray:
    """Where the VAD's chunks meet in the joined speech, in log-mel frames, rounded down to an
    even frame: windows that start on one give whole encoder frames (two log-mel frames each),
    so the voice frames of consecutive windows follow each other every 20 ms."""
    return 2 * (np.cumsum(chunk_samples)[:-1] // (2 * hop))


def speech_windows(content: int, joins, width: int) -> list[tuple[int, int]]:
    """[(start, end)) log-mel frame windows of at most `width` that cover [0, content). A
    window ends at the last join between VAD chunks that fits in it, or at `width` where
    none does (a chunk longer than a window, or no VAD). One window when all fits."""
    joins = np.asarray(joins, dtype=int)
    out, a = [], 0
    while a < content:
        b = a + width
        if b >= content:
            b = content
        else:
            inside = joins[(joins > a) & (joins <= b)]
            b = int(inside.max()) if len(inside) else b
        out.append((a, b))
        a = b
    return out or [(0, max(content, 1))]


def _shifted(segment, seconds: float):
    """A faster-whisper segment decoded from a window, moved to that window's place in the speech."""
    if not seconds:
        return segment
    words = [dataclasses.replace(w, start=w.start + seconds, end=w.end + seconds) for w in segment.words or []]
    return dataclasses.replace(segment, start=segment.start + seconds, end=segment.end + seconds,
                               words=words if segment.words is not None else None)


def _original_times(n_frames: int, chunks: list[dict] | None) -> np.ndarray:
    """Where each encoder frame (20 ms of the VAD-joined speech) starts in the original audio."""
    joined = np.arange(n_frames) * (SAMPLE_RATE // 50)
    if not chunks:
        return joined / SAMPLE_RATE
    starts = np.array([c["start"] for c in chunks])
    offsets = np.concatenate([[0], np.cumsum([c["end"] - c["start"] for c in chunks])[:-1]])
    k = np.searchsorted(offsets, joined, side="right") - 1
    return (starts[k] + joined - offsets[k]) / SAMPLE_RATE


@functools.cache
def _short_window_whisper():
    """faster-whisper's WhisperModel with an encoder that does not pay for padding.

    Every window reaches `encode` padded with exact zeros to 30 s (3000 frames); real
    log-mel frames are never all zero. The padding is cut to max(min_window_frames,
    the audio + margin_frames), so the first window of a short clip, and the re-encoded
    remainder when decoding stops mid-window, cost what their audio needs.
    """
    from faster_whisper import WhisperModel
    from faster_whisper.audio import pad_or_trim

    class ShortWindowWhisper(WhisperModel):
        min_window_frames = 3000
        margin_frames = 3000

        def encode(self, features: np.ndarray):
            full = features.shape[-1]
            columns = np.flatnonzero(np.abs(features.reshape(-1, features.shape[-2], full)).max(axis=(0, 1)) > 0)
            audio = int(columns[-1]) + 1 if len(columns) else 0
            window = min(full, max(self.min_window_frames, audio + self.margin_frames))
            return super().encode(pad_or_trim(features, window + window % 2))

    return ShortWindowWhisper
