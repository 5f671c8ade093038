"""Small file helpers every layer shares: content hashes, atomic writes, where the data is."""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# What the non-verbal inputs are (written by model.featurize); travels dataset -> checkpoint -> export.
FEATURE_SPEC = "feature_spec.json"


def data_root() -> Path:
    """The real data: $MMIM_DATA, else the shared/data folder beside the checkout."""
    return Path(os.environ.get("MMIM_DATA") or REPO.parent / "shared" / "data")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# A full disk or an exhausted quota: the user's to fix, with a message that says where.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class NoSpaceError(OSError):
    """No space left where a file was being written; nothing was half-written."""


def _no_space(path: Path, error: BaseException) -> BaseException:
    """A NoSpaceError when `error` came from a full disk, else `error` itself. Writers wrap the
    errno differently (safetensors and torch raise their own types), so a disk left with
    almost nothing free counts too."""
    if isinstance(error, NoSpaceError):
        return error
    full = (isinstance(error, OSError) and error.errno in NO_SPACE) or "No space left on device" in str(error)
    if not full:
        try:
            full = shutil.disk_usage(path.parent).free < 2**20
        except OSError:
            return error
    if not full:
        return error
    return NoSpaceError(errno.ENOSPC, f"no space left on the device holding {path.parent}; nothing was half-written. "
                                      "Free space there (or write elsewhere) and run the same command again", str(path))


@contextmanager
def _reporting_no_space(path: Path) -> Iterator[None]:
    """Re-raise a full disk met while writing `path` as a NoSpaceError; any other error as it is."""
    try:
        yield
    except Exception as e:
        converted = _no_space(path, e)
        if converted is e:
            raise
        raise converted from e


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """write(tmp_path), then rename onto `path`: a crash or a full disk never leaves half a
    file under `path`, and a failed write leaves no temporary file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name keeps the suffix: numpy.savez appends ".npz" to names without it.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        with _reporting_no_space(path):
            write(tmp)
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_dir(path: Path, write: Callable[[Path], None]) -> None:
    """write(tmp_dir), then put the folder in place of `path`, the same way as atomic_write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        with _reporting_no_space(path):
            write(tmp)
            if path.exists():
                old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old."))
                os.replace(path, old / "x")
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


class InUseError(RuntimeError):
    """Another process holds what this one asked to hold exclusively."""


@contextmanager
def held_exclusively(lock: Path, what: str) -> Iterator[None]:
    """Hold an advisory lock on `lock` (created if missing) for the block, or raise InUseError
    at once if another process holds it. The kernel drops it when the holder exits, however
    it exits, so a killed run never leaves a stale lock behind."""
    import fcntl

    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip()
            raise InUseError(f"{what} is in use by another process" + (f" (pid {holder})" if holder else "")) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        yield
