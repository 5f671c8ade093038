"""Given text: validated, cleaned and truncated before it reaches the tokenizer."""
from __future__ import annotations

from model.features.errors import FeatureError


def prepare_text(text: str | bytes | None, max_chars: int) -> tuple[str, dict]:
    """Cleaned text ("" = absent) and quality notes.

    Bytes must be UTF-8 (a BOM is allowed): other encodings raise FeatureError
    rather than guess, because a wrong guess silently feeds mojibake to the model.
    """
    quality: dict = {}
    if text is None:
        return "", quality
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise FeatureError(f"the text is not valid UTF-8 (bad byte at position {e.start}); "
                               "save or paste it as UTF-8") from e
    if not isinstance(text, str):
        raise FeatureError(f"text must be a string or UTF-8 bytes, not {type(text).__name__}")
    text = text.strip()
    if not text:
        return "", quality
    if len(text) > max_chars:
        quality.update(text_truncated=True, text_chars_original=len(text))
        text = text[:max_chars]
    return text, quality
