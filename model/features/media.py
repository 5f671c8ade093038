"""What media the front end takes: one list of file types for the app, featurize and the
batch job, and the audio rate every speech model here expects."""

SAMPLE_RATE = 16000  # Hz, mono: Silero VAD and Whisper both expect it
AUDIO_EXTS = (".wav", ".mp3", ".m4a", ".flac", ".ogg", ".opus", ".aac")
VIDEO_EXTS = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v")
MEDIA_EXTS = AUDIO_EXTS + VIDEO_EXTS


def describe() -> str:
    """The accepted types, for error messages."""
    return f"a video ({', '.join(e[1:] for e in VIDEO_EXTS)}) or an audio file ({', '.join(e[1:] for e in AUDIO_EXTS)})"
