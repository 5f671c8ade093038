"""The local cache for models joined from several wheels: $MMIM_CACHE, else
$XDG_CACHE_HOME/mmim, else ~/.cache/mmim.

`build_once` makes a cache entry in a temporary sibling directory and renames it into
place, so a crash or a second process never leaves a half-written model where a reader
would take it for whole.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

_lock = threading.Lock()


def cache_root() -> Path:
    if os.environ.get("MMIM_CACHE"):
        return Path(os.environ["MMIM_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mmim"


def build_once(target: Path, ready: str, build: Callable[[Path, Path], None]) -> Path:
    """`target`, made by build(directory, scratch) unless it already holds the file `ready`.

    build writes the entry into `directory` and may use `scratch` for anything else; both
    are temporary siblings of `target`, removed afterwards."""
    if (target / ready).is_file():
        return target
    with _lock:
        if (target / ready).is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            (tmp / "entry").mkdir()
            (tmp / "scratch").mkdir()
            build(tmp / "entry", tmp / "scratch")
            try:
                os.rename(tmp / "entry", target)
            except OSError:  # another process finished first: its copy is as good as ours
                if not (target / ready).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def join_files(parts: Iterable[Path], out: Path) -> Path:
    """The concatenation of `parts` (pieces of one split file) written to `out`."""
    with open(out, "wb") as dst:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, dst, 1 << 22)
    return out
