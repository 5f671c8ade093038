"""PID (Williams & Beer I_min) on distributions with known answers, and the report on a trained model."""
import json
from math import log

import numpy as np
import pytest

from model.experiments.pid import decompose, joint, quantile_codes

LN2 = log(2)


def table(rows) -> np.ndarray:
    """p(x1, x2, y) uniform over the listed (x1, x2, y) rows."""
    x1, x2, y = (np.array(c) for c in zip(*rows))
    return joint(x1, x2, y)


def test_xor_is_pure_synergy():
    pid = decompose(table([(0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 0)]))
    assert pid["synergy"] == pytest.approx(LN2) and pid["mi_joint"] == pytest.approx(LN2)
    for k in ("redundancy", "unique_1", "unique_2", "mi_1", "mi_2"):
        assert pid[k] == pytest.approx(0.0, abs=1e-12)


def test_copies_are_pure_redundancy():
    pid = decompose(table([(0, 0, 0), (1, 1, 1)]))
    assert pid["redundancy"] == pytest.approx(LN2)
    for k in ("unique_1", "unique_2", "synergy"):
        assert pid[k] == pytest.approx(0.0, abs=1e-12)


def test_one_informative_source_is_unique():
    # y = x1; x2 is an independent coin.
    pid = decompose(table([(a, b, a) for a in (0, 1) for b in (0, 1)]))
    assert pid["unique_1"] == pytest.approx(LN2)
    for k in ("redundancy", "unique_2", "synergy"):
        assert pid[k] == pytest.approx(0.0, abs=1e-12)


def test_quantile_codes():
    assert quantile_codes(np.arange(8.0), 4).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_report_on_a_trained_model(tmp_path, mosi_dir, tiny_bert):
    from model.experiments.interaction_report import interaction_report
    from tests.test_train import fixture_config
    from model.train import train

    cfg = fixture_config(tmp_path, mosi_dir, tiny_bert, epochs=1, benchmark="mosi-ctx")
    train(cfg)
    report = interaction_report(cfg.out_dir, "test", tmp_path / "report", bins=3)
    assert set(report["pairs"]) == {"text×audio", "text×visual", "audio×visual"}
    for pair in report["pairs"].values():
        parts = pair["redundancy"] + pair["synergy"] + sum(v for k, v in pair.items() if k.startswith("unique_"))
        assert parts == pytest.approx(pair["mi_joint"])  # the four parts add up to I(X1, X2; Y)
    assert json.loads((tmp_path / "report" / "interactions.json").read_text())["n"] == report["n"]
    assert (tmp_path / "report" / "interactions.png").stat().st_size > 1000
