"""Run the ablation grid (benchmarks x variants x seeds) and write the table.

    python -m model.experiments.ablate --out runs/ablation --seeds 0,1,2,3,4

Each run is `model.train` with the given flags, in its own folder
<out>/<benchmark>/<encoder>/<variant>/seed<k>, so an interrupted grid resumes
where it stopped (finished runs are skipped, killed ones resume). The summary
goes to <out>/results.md and <out>/results.json.
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from model.cli import add_dataclass_flags, dataclass_from_args
from model.config import VARIANTS, ModelConfig, TrainConfig
from model.experiments.evaluate import collect_runs, markdown_table, summarise

log = logging.getLogger("mmim.ablate")


def _run(cfg: TrainConfig) -> tuple[str, str | None]:
    """Train one run; a failure is returned (and logged in the run folder), not raised,
    so one broken run does not take the rest of the grid down."""
    import traceback

    from model.train import train

    Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(Path(cfg.out_dir) / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger().addHandler(handler)
    try:
        train(cfg)
        return cfg.out_dir, None
    except Exception:
        error = traceback.format_exc()
        log.error("run %s failed:\n%s", cfg.out_dir, error)
        return cfg.out_dir, error
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def grid(base: TrainConfig, out: Path, benchmarks, variants, seeds) -> list[TrainConfig]:
    from model.train import encoder_label

    encoder = encoder_label(base.model).replace(" (", "-").replace(", ", "-").rstrip(")") + (f"-ctx{base.model.context}" if base.model.context else "")
    return [
        replace(base, benchmark=b, variant=v, seed=s,
                out_dir=str(out / b / encoder / (v + (f"+{base.pretrain}" if base.pretrain else "")) / f"seed{s}"))
        for b in benchmarks
        for v in variants
        for s in seeds
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/ablation")
    parser.add_argument("--benchmarks", default="mosi-std,mosi-ctx")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel (processes)")
    add_dataclass_flags(parser, TrainConfig, skip=("benchmark", "variant", "seed", "out_dir"))
    add_dataclass_flags(parser, ModelConfig, skip=("modalities", "audio_dim", "visual_dim"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    base = dataclass_from_args(TrainConfig, args, model=dataclass_from_args(ModelConfig, args))
    out = Path(args.out)
    configs = grid(
        base, out, args.benchmarks.split(","), args.variants.split(","), [int(s) for s in args.seeds.split(",")]
    )
    if args.workers > 1:
        # spawn, not fork: a forked child cannot start CUDA.
        with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_run, configs))
    else:
        results = [_run(cfg) for cfg in configs]
    failed = [path for path, error in results if error]
    rows = summarise(collect_runs(out))
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "results.md").write_text(markdown_table(rows))
    print(markdown_table(rows))
    if failed:
        raise SystemExit(f"{len(failed)} of {len(configs)} runs failed (see train.log in each): {failed}")


if __name__ == "__main__":
    main()
