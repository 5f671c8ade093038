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

from model import featurize_worker as worker
from model.cli import add_dataclass_flags, dataclass_from_args
from model.features import FrontEnd, FrontEndConfig
from model.features.dataset import (ERROR_COLUMNS, SAMPLE_COLUMNS, SPLITS, atomic_write, feature_path,
                                    load_clip, load_featurized, normalisation, save_clip, write_csv)

log = logging.getLogger(__name__)
MEDIA_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".wav", ".mp3", ".m4a", ".flac", ".ogg")


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
        for ext in MEDIA_EXTENSIONS:
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
        worker.use_front_end(front_end)
        yield from map(worker.extract, jobs)
        return
    with ProcessPoolExecutor(cfg.workers, mp_context=get_context("spawn"), initializer=worker.init_front_end,
                             initargs=(asdict(fe_cfg),)) as pool:
        yield from pool.map(worker.extract, jobs, chunksize=1)


def _check_spec(out: Path, spec: dict) -> None:
    path = out / "feature_spec.json"
    if path.is_file():
        # The spec holds only what shapes the features (limits such as max_bytes may change between runs).
        if json.loads(path.read_text()) != spec:
            raise SystemExit(f"{out} was featurized with a different front end (see feature_spec.json); "
                             "use a new --out folder")
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(spec, indent=2)))


def featurize(cfg: FeaturizeConfig, fe_cfg: FrontEndConfig) -> dict:
    from tqdm import tqdm

    clips, out = Path(cfg.clips), Path(cfg.out)
    rows = read_labels(Path(cfg.labels))
    if cfg.limit:
        rows = rows[: cfg.limit]
    names = {p.relative_to(clips).as_posix() for p in clips.rglob("*") if p.is_file()}
    out.mkdir(parents=True, exist_ok=True)
    front_end = FrontEnd(fe_cfg)
    _check_spec(out, front_end.spec())

    errors, jobs, done, seen = [], [], 0, set()
    for r in rows:
        if (r["video_id"], r["clip_id"]) in seen:
            continue
        seen.add((r["video_id"], r["clip_id"]))
        base = {"video_id": r["video_id"], "clip_id": r["clip_id"]}
        clip = find_clip(clips, names, r["video_id"], r["clip_id"])
        if clip is None:
            errors.append({**base, "file": "", "reason": "clip file not found"})
            continue
        target = feature_path(out, r["video_id"], r["clip_id"])
        if target.is_file():
            done += 1  # resumable: already written by an earlier run
            continue
        jobs.append({**base, "file": str(clip), "text": r["text"], "out": str(target)})

    log.info("%d clips: %d already done, %d to do, %d not found", len(rows), done, len(jobs), len(errors))
    progress = tqdm(total=len(jobs), desc="featurize", unit="clip", file=sys.stderr)
    if cfg.dask and jobs:
        from model.featurize_dask import run_on_dask

        results = run_on_dask(jobs, asdict(fe_cfg), cfg.dask, cfg.workers)
    else:
        results = _run_local(jobs, cfg, front_end, fe_cfg)
    for result in results:
        result = _save(result)
        errors += [result] if result["reason"] else []
        progress.update()
    progress.close()
    # One order for errors.csv whatever order the workers finished in: that of labels.csv.
    order = {(r["video_id"], r["clip_id"]): i for i, r in reversed(list(enumerate(rows)))}
    errors.sort(key=lambda e: order[(e["video_id"], e["clip_id"])])

    # samples.csv lists every clip whose features exist (this run's and earlier runs').
    samples, listed = [], set()
    for r in rows:
        if (r["video_id"], r["clip_id"]) in listed:
            continue
        listed.add((r["video_id"], r["clip_id"]))
        target = feature_path(out, r["video_id"], r["clip_id"])
        if target.is_file():
            clip = load_clip(target)
            samples.append({"video_id": r["video_id"], "clip_id": r["clip_id"], "text": clip["text"],
                            "text_source": clip["text_source"], "label": r["label"], "split": r["mode"],
                            "file": str(find_clip(clips, names, r["video_id"], r["clip_id"]) or "")})
    write_csv(out / "samples.csv", SAMPLE_COLUMNS, samples)
    write_csv(out / "errors.csv", ERROR_COLUMNS, errors)
    stats = normalisation(load_featurized(out)["train"])
    atomic_write(out / "normalisation.json", lambda tmp: Path(tmp).write_text(json.dumps(stats)))
    summary = {"clips": len(rows), "written": len(samples), "skipped_existing": done, "errors": len(errors),
               "out": str(out)}
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
    print(json.dumps(featurize(cfg, dataclass_from_args(FrontEndConfig, args))))


if __name__ == "__main__":
    main()
