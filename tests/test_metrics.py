"""Metrics against hand-computed values."""
import math

import numpy as np
import pytest

from model.metrics import sentiment_metrics, weighted_f1

TRUTH = [-3.0, -1.4, 0.0, 0.6, 2.5]
PRED = [-2.0, 0.3, 0.0, 1.5, 3.6]


def test_hand_computed_case():
    m = sentiment_metrics(PRED, TRUTH)
    assert m["mae"] == pytest.approx(4.7 / 5)
    assert m["corr"] == pytest.approx(np.corrcoef(PRED, TRUTH)[0, 1])
    # Acc-7: preds round to [-2, 0, 0, 2, 3] (1.5 -> 2, half to even), truth to [-3, -1, 0, 1, 2].
    assert m["acc7"] == pytest.approx(1 / 5)
    # Acc-5 clips to [-2, 2]: [-2, 0, 0, 2, 2] vs [-2, -1, 0, 1, 2].
    assert m["acc5"] == pytest.approx(3 / 5)
    # has0: truth >= 0 is [F, F, T, T, T], pred >= 0 is [F, T, T, T, T].
    assert m["acc2_has0"] == pytest.approx(4 / 5)
    assert m["f1_has0"] == pytest.approx(0.4 * (2 / 3) + 0.6 * (6 / 7))
    # non0 drops the zero label: [F, F, T, T] vs [F, T, T, T].
    assert m["acc2_non0"] == pytest.approx(3 / 4)
    assert m["f1_non0"] == pytest.approx(0.5 * (2 / 3) + 0.5 * 0.8)


def test_constant_predictions():
    m = sentiment_metrics([0.5] * 4, [-1.0, 1.0, 2.0, 0.0])
    assert m["corr"] == 0.0
    assert m["mae"] == pytest.approx((1.5 + 0.5 + 1.5 + 0.5) / 4)
    assert m["acc2_has0"] == pytest.approx(0.75)
    assert m["f1_has0"] == pytest.approx(0.75 * 6 / 7)  # the negative class scores F1 = 0
    assert m["acc2_non0"] == pytest.approx(2 / 3)


def test_all_zero_labels_have_no_non0_score():
    m = sentiment_metrics([0.1, -0.2], [0.0, 0.0])
    assert math.isnan(m["acc2_non0"]) and math.isnan(m["f1_non0"])
    assert m["acc2_has0"] == pytest.approx(0.5)


def test_weighted_f1_matches_sklearn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    truth, pred = rng.random(200) > 0.4, rng.random(200) > 0.5
    assert weighted_f1(truth, pred) == pytest.approx(f1_score(truth, pred, average="weighted"))


def test_rejects_mismatched_input():
    with pytest.raises(ValueError):
        sentiment_metrics([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        sentiment_metrics([], [])


def test_a_grid_summary_counts_kept_runs_unless_a_run_here_replaces_them(tmp_path):
    """Runs whose folders are gone (an earlier --runs-out list) still count; a run of the same
    cell and seed under the folder replaces the kept one; mean and sample std over seeds."""
    import json

    from model.experiments.evaluate import collect_runs, summarise
    from model.metrics import METRIC_NAMES

    def run(seed, mae, variant="full"):
        test = {name: 0.5 for name in METRIC_NAMES} | {"mae": mae}
        return {"benchmark": "mosi-std", "text_encoder": "MPNet (k6)", "context": 0, "variant": variant, "seed": seed,
                "best_epoch": 3, "epochs_run": 5, "epoch_seconds": 100.0, "test": test}

    kept = [run(0, 0.60), run(1, 0.70), run(0, 0.90, "text")]
    here = tmp_path / "mosi-std" / "MPNet-k6" / "full" / "seed1"
    here.mkdir(parents=True)
    (here / "metrics.json").write_text(json.dumps(run(1, 0.64)))  # seed 1 again, on this machine
    (tmp_path / "x" / "seed2").mkdir(parents=True)
    (tmp_path / "x" / "seed2" / "metrics.json").write_text(json.dumps(run(2, 0.68)))
    runs = collect_runs(tmp_path, kept)
    assert sorted((r["variant"], r["seed"], r["test"]["mae"]) for r in runs) == [
        ("full", 0, 0.60), ("full", 1, 0.64), ("full", 2, 0.68), ("text", 0, 0.90)]
    full, text = summarise(runs)
    assert full["seeds"] == [0, 1, 2] and full["mae"]["mean"] == pytest.approx(0.64)
    assert full["mae"]["std"] == pytest.approx(0.04)  # sample std of 0.60, 0.64, 0.68
    assert full["train_hours"] == pytest.approx(3 * 500 / 3600)
    assert text["seeds"] == [0] and text["mae"] == {"mean": 0.90, "std": 0.0}
