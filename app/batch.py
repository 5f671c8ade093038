"""Many clips at once: files and/or a zip, an optional CSV of transcripts -> a CSV of results.

The zip is read defensively: members are never extracted by their own names
(no path traversal), links and folders are skipped, and member count, each
member's size and the total uncompressed size are capped before anything is
written. A clip that fails gets a row with its error; the batch goes on.
"""
from __future__ import annotations

import csv
import errno
import io
import logging
import re
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from model.features import FeatureError
from model.features.media import MEDIA_EXTS, VIDEO_EXTS

from .config import AppConfig

log = logging.getLogger("mmim.app")
# Zip bombs: a member that claims to expand more than this many times is refused.
MAX_COMPRESSION_RATIO = 200
# Longest name a member is saved under: file systems refuse names over 255 bytes.
MAX_NAME_CHARS = 100
# What reading a damaged member raises: the zip's own check, the decompressor's, a short read, or
# a seek to an offset the damage made up (OSError EINVAL).
DAMAGED_MEMBER = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError)
# OSErrors that are the server's trouble (its disk, its limits), never the member's.
SERVER_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EMFILE, errno.ENFILE}
DIAGNOSTIC_KEYS = ("present", "ba", "ba_percentile", "cpc", "cpc_percentile", "shapley", "trust", "contribution")
RESULT_COLUMNS = [
    "file", "segment_start", "segment_end", "score", "label", "bin7", "summary", "text_source", "transcript",
    *[f"{k}_{m}" for m in ("text", "audio", "visual") for k in DIAGNOSTIC_KEYS],
    "shapley_baseline", "fused_score", "flags", "total_s", "error",
]


@dataclass
class Clip:
    name: str  # the name the user knows it by (file name or zip member base name)
    path: Path
    error: str = ""  # why the clip could not even be read (a damaged zip member); it gets an error row


def _safe_name(name: str, taken: set[str]) -> str:
    """The member's base name with odd characters replaced, made unique in this batch."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", PurePosixPath(name.replace("\\", "/")).name).lstrip(".") or "clip"
    if len(base) > MAX_NAME_CHARS:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: MAX_NAME_CHARS - len(ext) - 1] + dot + ext) if dot and len(ext) < 10 else base[:MAX_NAME_CHARS]
    candidate, i = base, 1
    while candidate in taken:
        stem, dot, ext = base.rpartition(".")
        candidate = f"{stem}_{i}.{ext}" if dot else f"{base}_{i}"
        i += 1
    taken.add(candidate)
    return candidate


def unpack_zip(path: str | Path, workdir: Path, config: AppConfig) -> list[Clip]:
    """Media members of a zip, copied under `workdir` with sanitised flat names."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise FeatureError(f"{Path(path).name} is not a readable zip file ({e}); zip the clips again") from None
    with archive:
        members = []
        for info in archive.infolist():
            name = info.filename
            mode = info.external_attr >> 16
            if not name:  # zipfile cuts a name at its first NUL: "\x00.wav" becomes ""
                continue
            if info.is_dir() or stat.S_ISLNK(mode) or name.startswith("__MACOSX/") or PurePosixPath(name).name.startswith("."):
                continue
            if Path(name).suffix.lower() not in MEDIA_EXTS:
                continue
            if info.file_size > config.max_upload_bytes:
                raise FeatureError(f"{name} in the zip is {info.file_size / 2**20:.1f} MB; the limit per clip is {config.max_upload_mb:g} MB")
            if info.compress_size and info.file_size / info.compress_size > MAX_COMPRESSION_RATIO:
                raise FeatureError(f"{name} in the zip expands {info.file_size // info.compress_size}x; refusing a possible zip bomb")
            members.append(info)
        if not members:
            raise FeatureError(f"{Path(path).name} holds no audio or video clips ({', '.join(sorted(MEDIA_EXTS))})")
        if len(members) > config.max_batch_files:
            raise FeatureError(f"the zip holds {len(members)} clips; the limit is {config.max_batch_files} per batch")
        total = sum(m.file_size for m in members)
        if total > config.max_zip_mb * 2**20:
            raise FeatureError(f"the zip expands to {total / 2**20:.0f} MB; the limit is {config.max_zip_mb:g} MB")
        clips, taken = [], set()
        for info in members:
            target = workdir / _safe_name(info.filename, taken)
            name = PurePosixPath(info.filename).name
            try:
                _copy_member(archive, info, target, config)
            except DAMAGED_MEMBER as e:
                target.unlink(missing_ok=True)
                if isinstance(e, OSError) and e.errno in SERVER_ERRNOS:
                    raise
                clips.append(Clip(name, target, f"this member of the zip is damaged ({e}); zip the clip again"))
                continue
            clips.append(Clip(name, target))
        return clips


def _copy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, config: AppConfig) -> None:
    """Copy with a hard cap: the header's size may lie."""
    with archive.open(info) as src, open(target, "wb") as dst:
        written = 0
        while block := src.read(1 << 20):
            written += len(block)
            if written > config.max_upload_bytes:
                raise FeatureError(f"{info.filename} in the zip is larger than its header says; refusing it")
            dst.write(block)


def collect_clips(files: list[str | Path], workdir: Path, config: AppConfig) -> list[Clip]:
    clips = []
    for f in files or []:
        f = Path(f)
        if f.suffix.lower() == ".zip":
            clips += unpack_zip(f, workdir, config)
        elif f.suffix.lower() in MEDIA_EXTS:
            clips.append(Clip(f.name, f))
        elif f.suffix.lower() != ".csv":  # a transcripts CSV dropped among the clips is fine
            raise FeatureError(f"{f.name} is not an audio or video clip or a zip; allowed: {', '.join(sorted(MEDIA_EXTS + ('.zip',)))}")
    if not clips:
        raise FeatureError("no clips given; upload audio/video files or a zip of them")
    if len(clips) > config.max_batch_files:
        raise FeatureError(f"{len(clips)} clips given; the limit is {config.max_batch_files} per batch")
    return clips


def read_transcripts(path: str | Path | None) -> dict[str, str]:
    """CSV with a `file` column (name with or without extension) and a `text` column."""
    if not path:
        return {}
    raw = Path(path).read_bytes()
    if len(raw) > 10 * 2**20:
        raise FeatureError("the transcripts CSV is larger than 10 MB")
    try:
        rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as e:
        raise FeatureError(f"the transcripts CSV could not be read ({e}); save it as UTF-8 CSV") from None
    if not rows or not {"file", "text"} <= set(rows[0]):
        raise FeatureError("the transcripts CSV needs a header row with the columns file,text")
    out = {}
    for row in rows:
        name = PurePosixPath((row["file"] or "").replace("\\", "/")).name
        out[name] = out[Path(name).stem] = row["text"] or ""
    return out


def result_row(name: str, result: dict | None, error: str = "") -> dict:
    row = {c: "" for c in RESULT_COLUMNS}
    row["file"], row["error"] = name, error
    if result:
        row.update(
            score=result["score"], fused_score="" if result.get("fused_score") is None else result["fused_score"],
            label=result["label"], bin7=result["bin7"], summary=result["summary"],
            text_source=result["text_source"], transcript=result["transcript"],
            flags="; ".join(result["flags"]), total_s=result.get("timings", {}).get("total", ""),
            shapley_baseline="" if result.get("shapley_baseline") is None else result["shapley_baseline"],
        )
        for m, d in result["diagnostics"].items():
            for k in DIAGNOSTIC_KEYS:
                row[f"{k}_{m}"] = "" if d.get(k) is None else d[k]
    return row


def segment_rows(name: str, timeline: dict) -> list[dict]:
    rows = []
    for seg in timeline["segments"]:
        row = result_row(name, seg if seg["score"] is not None else None,
                         "" if seg["score"] is not None else "; ".join(seg["flags"]))
        row.update(segment_start=seg["start"], segment_end=seg["end"])
        rows.append(row)
    return rows


def run_batch(
    predictor, files: list, transcripts_csv: str | None, out_dir: Path, config: AppConfig,
    progress: Callable[[int, int, str], None] | None = None, per_segment: bool = False,
) -> tuple[Path, list[dict]]:
    """Score every clip; returns the CSV path and its rows. Clip errors go into the rows.
    per_segment: each clip as a timeline (its transcript, if given, is not used), one row per segment."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    transcripts = read_transcripts(transcripts_csv or next((f for f in files or [] if str(f).lower().endswith(".csv")), None))
    with tempfile.TemporaryDirectory(prefix="mmim-batch-") as tmp:
        clips = collect_clips(files, Path(tmp), config)
        rows = []
        for i, clip in enumerate(clips):
            if progress:
                progress(i, len(clips), clip.name)
            if clip.error:
                rows.append(result_row(clip.name, None, clip.error))
                continue
            text = transcripts.get(clip.name, transcripts.get(Path(clip.name).stem))
            is_video = clip.path.suffix.lower() in VIDEO_EXTS
            media = {"video": clip.path} if is_video else {"audio": clip.path}
            try:
                if per_segment:
                    rows += segment_rows(clip.name, predictor.timeline(**media))
                else:
                    rows.append(result_row(clip.name, predictor.predict(text=text, **media)))
            except FeatureError as e:
                rows.append(result_row(clip.name, None, str(e)))
            except Exception as e:  # one broken clip must not lose the others' results
                log.exception("batch clip %s failed", clip.name)
                rows.append(result_row(clip.name, None, f"internal error: {type(e).__name__}"))
        if progress:
            progress(len(clips), len(clips), "done")
    path = out_dir / "mmim_results.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path, rows
