"""Featurize a folder of clips with the app's front end into a training dataset.

    python -m model.featurize --clips DIR --labels labels.csv --out DATASET [--workers 2]
    python -m model.featurize ... --dask [ADDRESS]      # on a Dask cluster

labels.csv has MMSA's columns (video_id, clip_id, text, label, mode). A clip is
DIR/<video_id>/<clip_id>.<ext> or DIR/<video_id>_<clip_id>.<ext> for any
supported extension. Resumable: clips whose features exist are skipped; every
write is atomic. Failed clips go to errors.csv and are never written as rows.

Workers (local processes, or Dask workers) only extract; this process writes every
file, so a cluster's workers need to read the clips (the same path on every machine)
but never the output folder. `--dask` alone starts a LocalCluster of `--workers`
processes bound to 127.0.0.1, unless DASK_SCHEDULER_ADDRESS names a scheduler;
`--dask tcp://HOST:8786` uses that scheduler.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

from .worker import extract, init_front_end, use_front_end
from model.files import NoSpaceError, atomic_write
from model.cli import add_dataclass_flags, dataclass_from_args
from model.features import FrontEnd, FrontEndConfig
from model.features.media import MEDIA_EXTS
from model.data.featurized import (ERROR_COLUMNS, SAMPLE_COLUMNS, SPLITS, feature_path,
                                    load_clip, save_clip, write_csv)

log = logging.getLogger(__name__)


@dataclass
class FeaturizeConfig:
    clips: str = ""
    labels: str = ""
    out: str = ""
    workers: int = 1     # processes (or LocalCluster workers); each loads its own front end
    limit: int = 0       # >0: only the first N rows of labels.csv
    # "": no Dask. "local": DASK_SCHEDULER_ADDRESS if set, else a LocalCluster. Otherwise a scheduler address.
    dask: str = ""


def find_clip(clips: Path, names: set[str], video_id: str, clip_id: str) -> Path | None:
    """DIR/<video_id>/<clip_id>.<ext>, else DIR/<video_id>_<clip_id>.<ext> (names: relative paths in DIR)."""
    for stem in (f"{video_id}/{clip_id}", f"{video_id}_{clip_id}"):
        for ext in MEDIA_EXTS:
            if stem + ext in names:
                return clips / (stem + ext)
    return None


def read_labels(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    missing = {"video_id", "clip_id", "text", "label", "mode"} - set(rows[0] if rows else {})
    if missing:
        raise SystemExit(f"{path}: missing columns {sorted(missing)}; "
                         "expected MMSA's video_id, clip_id, text, label, mode")
    bad = {r["mode"] for r in rows} - set(SPLITS)
    if bad:
        raise SystemExit(f"{path}: unknown mode values {sorted(bad)}; use train/valid/test")
    return rows


def _save(result: dict) -> dict:
    """Write a successful result's features (atomically); the result without its arrays."""
    features = result.pop("features", None)
    if features is not None:
        save_clip(Path(result["out"]), **features)
    return result


def _run_local(jobs: list[dict], cfg: FeaturizeConfig, front_end: FrontEnd, fe_cfg: FrontEndConfig):
    if cfg.workers <= 1:
        use_front_end(front_end)
        yield from map(extract, jobs)
        return
    with ProcessPoolExecutor(cfg.workers, mp_context=get_context("spawn"), initializer=init_front_end,
                             initargs=(asdict(fe_cfg),)) as pool:
        yield from pool.map(extract, jobs, chunksize=1)


def _check_spec(out: Path, spec: dict) -> None:
    path = out / "feature_spec.json"
    if path.is_file():
        # The spec holds only what shapes the features (limits such as max_bytes may change between runs).
        if json.loads(path.read_text()) != spec:
            raise SystemExit(f"{out} was featurized with a different front end (see feature_spec.json); "
                             "use a new --out folder")
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(spec, indent=2)))


def plan(rows: list[dict], clips: Path, names: set[str], out: Path) -> tuple[list[dict], list[dict], int]:
    """(jobs to run, clips not found, clips already written by an earlier run); names: the files in clips."""
    jobs, missing, done, seen = [], [], 0, set()
    for r in rows:
        key = (r["video_id"], r["clip_id"])
        if key in seen:
            continue
        seen.add(key)
        base = {"video_id": r["video_id"], "clip_id": r["clip_id"]}
        clip = find_clip(clips, names, *key)
        if clip is None:
            missing.append({**base, "file": "", "reason": "clip file not found"})
        elif feature_path(out, *key).is_file():
            done += 1
        else:
            jobs.append({**base, "file": str(clip), "text": r["text"], "out": str(feature_path(out, *key))})
    return jobs, missing, done


def extract_all(jobs: list[dict], cfg: FeaturizeConfig, front_end: FrontEnd, fe_cfg: FrontEndConfig) -> list[dict]:
    """Run every job (locally or on Dask), writing each clip's features as its result arrives;
    the failures."""
    from tqdm import tqdm

    if cfg.dask and jobs:
        from model.featurize.cluster import run_on_dask

        results = run_on_dask(jobs, asdict(fe_cfg), cfg.dask, cfg.workers)
    else:
        results = _run_local(jobs, cfg, front_end, fe_cfg)
    failed = []
    for result in tqdm(results, total=len(jobs), desc="featurize", unit="clip", file=sys.stderr):
        result = _save(result)
        if result["reason"]:
            failed.append(result)
    return failed


def write_index(rows: list[dict], clips: Path, names: set[str], out: Path, errors: list[dict]) -> int:
    """samples.csv (every clip whose features exist, this run's and earlier runs') and errors.csv,
    both in the order of labels.csv whatever order the workers finished in; the number of samples."""
    order = {(r["video_id"], r["clip_id"]): i for i, r in reversed(list(enumerate(rows)))}
    errors = sorted(errors, key=lambda e: order[(e["video_id"], e["clip_id"])])
    samples, listed = [], set()
    for r in rows:
        key = (r["video_id"], r["clip_id"])
        target = feature_path(out, *key)
        if key in listed or not target.is_file():
            continue
        listed.add(key)
        clip = load_clip(target)
        samples.append({"video_id": r["video_id"], "clip_id": r["clip_id"], "text": clip["text"],
                        "text_source": clip["text_source"], "label": r["label"], "split": r["mode"],
                        "file": str(find_clip(clips, names, *key) or "")})
    write_csv(out / "samples.csv", SAMPLE_COLUMNS, samples)
    write_csv(out / "errors.csv", ERROR_COLUMNS, errors)
    return len(samples)


def featurize(cfg: FeaturizeConfig, fe_cfg: FrontEndConfig) -> dict:
    """Featurize cfg.clips into cfg.out; a summary of what was done."""
    clips, out = Path(cfg.clips), Path(cfg.out)
    rows = read_labels(Path(cfg.labels))[: cfg.limit or None]
    out.mkdir(parents=True, exist_ok=True)
    # Temporary files a killed run left (atomic writes rename them into place when done).
    for stale in (out / "features").glob(".*"):
        stale.unlink()
    front_end = FrontEnd(fe_cfg)
    _check_spec(out, front_end.spec())
    names = {p.relative_to(clips).as_posix() for p in clips.rglob("*") if p.is_file()}
    jobs, missing, done = plan(rows, clips, names, out)
    log.info("%d clips: %d already done, %d to do, %d not found", len(rows), done, len(jobs), len(missing))
    errors = missing + extract_all(jobs, cfg, front_end, fe_cfg)
    written = write_index(rows, clips, names, out, errors)
    summary = {"clips": len(rows), "written": written, "skipped_existing": done, "errors": len(errors), "out": str(out)}
    log.info("%s", summary)
    return summary


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_flags(parser, FeaturizeConfig, skip=("dask",))
    parser.add_argument("--dask", nargs="?", const="local", default=None, metavar="ADDRESS",
                        help="extract on Dask: a LocalCluster (or DASK_SCHEDULER_ADDRESS), or the scheduler at ADDRESS")
    add_dataclass_flags(parser, FrontEndConfig)
    args = parser.parse_args(argv)
    cfg = dataclass_from_args(FeaturizeConfig, args)
    if not (cfg.clips and cfg.labels and cfg.out):
        parser.error("--clips, --labels and --out are required")
    try:
        print(json.dumps(featurize(cfg, dataclass_from_args(FrontEndConfig, args))))
    except NoSpaceError as e:
        raise SystemExit(f"error: {e.strerror} ({e.filename}); clips already written are kept") from None


if __name__ == "__main__":
    main()
