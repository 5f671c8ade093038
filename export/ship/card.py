"""MODEL_CARD.md, filled from the folder's own metrics.json, config and feature spec, so that a
rebuild keeps every figure and fact in it true. The wording is MODEL_CARD.template.md."""
from __future__ import annotations

import json
from pathlib import Path

from model.config import MODALITIES
from model.files import atomic_write_text
from model.data.targets import CLEAR_TEXT
from model.metrics import OUTSIDE_PERCENTILE

from ..artifacts import MANIFEST, write_manifest
from ..trust import FULL_TRUST_PERCENTILE
from .corpora import BACKWARDS_EVERY, FACE_VALENCE, STRONG, VOICE_VALENCE
from .tuples import BIN_EDGES

TEMPLATE = Path(__file__).with_name("MODEL_CARD.template.md")


def _row(name: str, m: dict, last: str = "polarity_acc") -> str:
    return f"| {name} | {m['n']} | {m['mae']:.3f} | {m['corr']:.3f} | {100 * m[last]:.1f} % |"


def text_encoder_name(model_dir: Path) -> str:
    """What the text encoder is, read from its own config: e.g. "a 6-layer, 384-d BERT"."""
    config = json.loads((Path(model_dir) / "text_encoder" / "config.json").read_text())
    kind = {"bert": "BERT", "mpnet": "MPNet"}.get(config["model_type"], config["model_type"])
    return f"a {config['num_hidden_layers']}-layer, {config['hidden_size']}-d {kind}"


def _reader_data(mosi_copies: int, corpora) -> str:
    """What the text reader learnt from, in words: "MOSI's training fold (twice) and SST's"."""
    mosi = [f"MOSI's training fold{' (x' + str(mosi_copies) + ')' if mosi_copies > 1 else ''}"] if mosi_copies else []
    names = {"sst": "SST's training split", "vader_movie_snippets": "the VADER movie snippets' training split"}
    return " and ".join(mosi + [names.get(c, c) for c in corpora])


def _percent(share: float | None) -> str:
    return "n/a" if share is None else f"{100 * share:.0f} %"


def _mae(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _share(share: float | None, n: int) -> str:
    return "n/a (no clips)" if share is None else f"{_percent(share)} of {n}"


def _provenance(requantized: dict | None, reevaluated: dict | None) -> str:
    """Which graph the figures were measured on, where the folder was re-quantised
    (export/ship/requantize.py) or measured again (python -m export.ship --evaluate-only)."""
    out = ""
    if requantized:
        out += (f"\nThe graph was re-quantised from the build's earlier 8-bit graph ({requantized['from']}) on "
                f"{requantized['date']} with `{requantized['command']}`; the fp32 row is that earlier graph read back to fp32.")
        if not reevaluated:
            out += (f" Measured again on it: {', '.join(requantized['remeasured'])}. From the earlier graph (the same "
                    f"weights; the build's tuples were not kept): {', '.join(requantized['earlier'])}.")
    if reevaluated:
        out += (f"\nEvery held-out figure below was measured on the graph that ships, on {reevaluated['date']}, with "
                f"`{reevaluated['command']}` (corpora and tuples made again by the build's own recipe).")
    return out + "\n" if out else ""


def _neutral_rows(by_split: dict | None) -> str:
    """| split | n | mean | mean |score| | below -0.5 | above +0.5 | for a modality alone on neutral clips."""
    if not by_split:
        return "| not measured for this build | | | | | |"
    return "\n".join(f"| {split} | {m['n']} | {m['mean']:+.3f} | {m['mean_abs']:.3f} | {100 * m['below_minus_half']:.0f} % | "
                     f"{100 * m['above_half']:.0f} % |" for split, m in by_split.items() if split in ("valid", "test"))


def _swapped_rows(pools: dict | None) -> str:
    """| voices | n | outside training | voice's share (outside / inside) | effect | alone | pass-through, served
    (the fusion network alone) | trusted less |"""
    if not pools:
        return "| not measured for this build | | | | | | | |"

    def fused(m, key, spec):  # a build measured before trust has no _fused figures
        return f" ({format(m[key + '_fused'], spec)})" if key + "_fused" in m else ""

    return "\n".join(
        f"| {name} | {m['voices']} | {_percent(m['outside_share'])} | {_percent(m['voice_share'])} "
        f"({_percent(m['voice_share_outside'])} / {_percent(m['voice_share_inside'])}) | {m['mean_abs_effect']:.3f}"
        f"{fused(m, 'mean_abs_effect', '.3f')} | {m['voice_alone_mean']:+.2f} / {m['voice_alone_mean_abs']:.2f} | "
        f"{m['pass_through']:.2f}{fused(m, 'pass_through', '.2f')} | {_percent(m.get('trusted_less_share'))} |"
        for name, m in pools.items())


# The card's words for each kind of voice a build may add at valence 0 (corpora.NEUTRAL_VOICES).
NEUTRAL_VOICE_ROWS = {
    "other_languages": ("plain speech in other languages, {n} clips (`shared/data/speech/foreign`)",
                        "by speaker: {split}", "CC0, CC BY(-SA) and others (see its README); no recording ships"),
    "backwards": (f"one in {BACKWARDS_EVERY} RAVDESS clips played backwards, {{n}} clips", "RAVDESS's actor splits: {split}",
                  "as RAVDESS"),
}


def _neutral_voice_rows(sources: dict) -> str:
    rows = []
    for kind, (corpus, split, terms) in NEUTRAL_VOICE_ROWS.items():
        if kind in sources:
            counts = sources[kind]
            fill = {"n": sum(counts.values()), "split": " / ".join(str(counts[s]) for s in ("train", "valid", "test"))}
            rows.append(f"| voice | {corpus.format(**fill)} | {split.format(**fill)} | {terms} |\n")
    return "".join(rows)


def model_card(report: dict, model_dir: Path) -> str:
    u, r, d = report["unimodal"], report["recipe"], report["data"]
    spec = json.loads((Path(model_dir) / "feature_spec.json").read_text())
    mi = report["mi_agree_vs_disagree"]
    n_test = d["tuples"]["test"]
    reliability = {"text": u["text_mosi_test"]["corr"], "audio": u["audio_ravdess_test"]["corr"],
                   "visual": u["visual_fer_test"]["corr"]}
    shap, shap_dis = report["mean_abs_shapley"], report["mean_abs_shapley_disagreeing"]
    clip = report["clip_path_ravdess_test"]
    reader = report.get("text_reader", {})
    variants, plain, gate = report["variants"], report["plain_speech_voice_alone"], report["transcript_gate_test"]
    shipped_variant = next(iter(json.loads((Path(model_dir) / "manifest.json").read_text())["variants"]))
    fields = {
        "plain_clips": sum(d["voice_sources"]["plain_speech"].values()),
        "neutral_voice_rows": _neutral_voice_rows(d["voice_sources"]),
        "neutral_voice_labels": "".join(f"; {kind.replace('_', ' ')}: 0" for kind in NEUTRAL_VOICE_ROWS
                                        if kind in d["voice_sources"]),
        "plain_split": " / ".join(str(d["voice_sources"]["plain_speech"][s]) for s in ("train", "valid", "test")),
        "voice_counts": " / ".join(str(d["voices"][s]) for s in ("train", "valid", "test")),
        "reader_data": _reader_data(r["text_reader_mosi_copies"], r["text_reader_corpora"]),
        "reader_epochs": r["text_reader_epochs"], "reader_best_epoch": reader.get("best_epoch", "n/a"),
        "reader_frozen": (f"the embeddings and lower {r['text_reader_frozen_layers']} layers frozen and cached "
                          "(`model/text_prefix.py`)" if r["text_reader_frozen_layers"] else "every layer trained"),
        "shipped_variant": shipped_variant, "shipped_mb": variants[shipped_variant]["bytes"] / 1e6,
        "variant_rows": "\n".join(
            f"| {v} | {m['text_mosi_test_mae']:.3f} | {m['text_sst_test_mae']:.3f} | {m['ms_per_sentence_batch1_1thread']:.1f} | "
            f"{m['bytes'] / 1e6:.0f} |" for v, m in variants.items()),
        "requantized": _provenance(report.get("requantized"), report.get("reevaluated")),
        "plain_rows": _neutral_rows(plain),
        "neutral_face_rows": _neutral_rows(report.get("neutral_face_alone")),
        "gate_english": _share(gate["english_kept"], gate["english_clips"]),
        "gate_other": _share(gate["other_scored"], gate["other_clips"]),
        "outside_pct": OUTSIDE_PERCENTILE, "full_trust_pct": FULL_TRUST_PERCENTILE,
        "familiarity_rows": "\n".join(f"| {name} training | {m['n']} | {_percent(m['voice_share'])} | "
                                      f"{_mae(m.get('mae_with_voice'))} | {_mae(m.get('mae_without_voice'))} |"
                                      for name, m in report["voice_share_by_familiarity"].items()),
        "swapped_rows": _swapped_rows(report.get("swapped_voices")),
        "text_encoder": text_encoder_name(model_dir),
        "whisper": spec["audio"]["whisper_model"], "audio_rate": spec["audio"]["rate_hz"], "audio_dim": spec["audio"]["dim"],
        "strong": STRONG,
        "voice_valence": ", ".join(f"{k} {v:+.1f}" for k, v in VOICE_VALENCE.items()),
        "face_valence": ", ".join(f"{k} {v:+.1f}" for k, v in FACE_VALENCE.items()),
        **{k: r[k] for k in ("faces_train", "faces_valid", "faces_test", "face_frames", "face_scale", "sst_share", "disagree_share")},
        "face_detection_train": f"{100 * report['face_detection_rate']['train']:.0f}",
        "bin_edges": list(BIN_EDGES),
        "disagreeing_train": d["disagreeing_tuples"]["train"],
        "disagreeing_train_pct": f"{100 * d['disagreeing_tuples']['train'] / d['tuples']['train']:.0f}",
        "tuples_train": d["tuples"]["train"], "tuples_valid": d["tuples"]["valid"], "tuples_test": n_test,
        "clear_text": CLEAR_TEXT,
        "modality_dropout": report["train_config"]["modality_dropout"],
        "unimodal_weight": report["train_config"]["unimodal_weight"],
        "best_epoch": report["training"]["best_epoch"], "epochs_run": report["training"]["epochs_run"],
        "unimodal_rows": "\n".join([
            _row("text alone, MOSI standard test fold", u["text_mosi_test"]),
            _row("text alone, SST test", u["text_sst_test"]),
            _row("voice alone, RAVDESS actors 22-24 (valence)", u["audio_ravdess_test"]),
            _row("voice alone, the same under real recording conditions", u["audio_ravdess_conditioned_test"]),
            _row("face alone, FER2013 PrivateTest, faces found (valence)", u["visual_fer_test"]),
            _row("face + voice, no text, test tuples (their mean valence)", report["face_voice_no_text"]),
        ]),
        "clip_rows": "\n".join([
            _row("voice alone (no speech recognition)", clip["voice_alone"]),
            _row("voice + the words Whisper hears", clip["voice_with_asr_text"]),
        ]),
        "tuple_rows": "\n".join(
            _row(name, {"n": n_test, **report[key]}, "acc2_non0")
            for name, key in (("all", "tuples_test"), ("agreeing (one valence bin)", "tuples_test_agreeing"),
                              ("disagreeing", "tuples_test_disagreeing"),
                              ("all, the fusion network's own score (before trust)", "tuples_test_fused"))
            if key in report
        ),
        "shapley_rows": "\n".join(f"| {m} | {reliability[m]:.3f} | {shap[m]:.3f} | {shap_dis[m]:.3f} |" for m in MODALITIES),
        "mi_pairs": mi["n_pairs"],
        "mi_rows": "\n".join(
            f"| `{k}` | {v['agree_mean']:.3f} | {v['disagree_mean']:.3f} | {v['paired_diff_mean']:+.3f} ± "
            f"{v['paired_diff_se']:.3f} | {100 * v['agree_higher_share']:.0f} % |"
            for k, v in mi.items() if k != "n_pairs"
        ),
    }
    return TEMPLATE.read_text(encoding="utf-8").format(**fields)


def write_report(folder: Path, report: dict) -> None:
    """metrics.json, the card made from it, and the manifest, which covers every file that ships."""
    folder = Path(folder)
    atomic_write_text(folder / "metrics.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(folder / "MODEL_CARD.md", model_card(report, folder))
    write_manifest(folder, **{k: v for k, v in json.loads((folder / MANIFEST).read_text()).items() if k != "files"})
