"""Re-quantise a shipped folder's int8 graph in the current format, without its fp32 checkpoint.

    python -m export.ship.requantize weights/mmim-clip --data-root ../shared/data

The folder's 8-bit weight-only graph is read back to fp32 (`weight_only_to_fp32`: the function
it computed), quantised again by `quantize_int8`, calibrated on the text reader's own training
text (MOSI's training fold and SST's training split), and checked as the recipe checks a build:
on MOSI and SST test text against that fp32 graph, within VARIANT_MAE_TOLERANCE. The text rows
of metrics.json, the card and the manifest are rewritten. Rows measured on clips without words
do not pass through the quantised MatMuls and stay exact; rows with words (the test tuples) need
the build's cached tuples and stay as measured on the earlier graph, which metrics.json and the
card say ("requantized"), until `python -m export.ship --evaluate-only` measures them again.
"""
from __future__ import annotations

import argparse
import json
import logging
from datetime import date
from pathlib import Path

from model.data.samples import spread

from ..artifacts import MANIFEST, VARIANT_FILES, write_manifest
from ..build import keep_variants
from ..quantize import CALIBRATION_CLIPS, quantize_int8, weight_only_to_fp32
from ..runtime import OnnxModel, ServedModel
from ..samples import clip_sample
from .card import write_report
from .corpora import text_corpus
from .evaluate import compare_variants, unimodal_metrics

log = logging.getLogger("mmim.requantize")


def requantize(folder: Path, data_root: Path) -> dict:
    import onnx

    folder = Path(folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    if list(manifest["variants"]) != ["int8"]:
        raise ValueError(f"{folder} ships {list(manifest['variants'])}; this reads an int8-only folder")
    fields = {k: v for k, v in manifest.items() if k not in ("files", "variants")}
    int8, fp32 = folder / VARIANT_FILES["int8"], folder / VARIANT_FILES["fp32"]
    graph = onnx.load(str(int8))
    weight_only_to_fp32(graph)
    onnx.save(graph, str(fp32))

    texts = text_corpus(data_root)
    served = ServedModel(folder)  # the folder's tokenizer and collate, without a session
    calibration = [served.collate([clip_sample(t, y)]) for _, t, y in spread(texts["train"], CALIBRATION_CLIPS)]
    quantize_int8(fp32, int8, calibration)
    write_manifest(folder, **fields, variants={"fp32": fp32.name, "int8": int8.name})
    check = compare_variants(folder, texts, ("fp32", "int8"))  # raises beyond the tolerance
    keep_variants(folder, ("int8",), variant_check=check)

    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["variants"] = check
    metrics["requantized"] = {
        "from": "8-bit weight-only MatMulNBits", "date": date.today().isoformat(),
        "command": f"python -m export.ship.requantize {folder}",
        "remeasured": ["the graph table", "text alone on MOSI and SST test"],
        # Rows whose clips carry words went through the quantised MatMuls too.
        "earlier": ["the test tuples, the RAVDESS files with Whisper's words, the MI and Shapley tables"],
    }
    runtime = OnnxModel(folder, providers=["CPUExecutionProvider"])
    for corpus in ("mosi", "sst"):
        samples = [clip_sample(t, y) for src, t, y in texts["test"] if src == corpus]
        metrics["unimodal"][f"text_{corpus}_test"] = unimodal_metrics(runtime, samples)
    write_report(folder, metrics)
    log.info("requantized %s: %s", folder, json.dumps(check))
    return check


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(json.dumps(requantize(args.folder, args.data_root), indent=2))


if __name__ == "__main__":
    main()
