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
