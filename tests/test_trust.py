"""The trust weights on the voice and the face (export/trust.py), on hand-made graph outputs."""
import numpy as np
import pytest

from export.trust import FULL_TRUST_PERCENTILE, apply_trust, trust_weights

NAN = float("nan")


def outputs(cpc_audio, ba_audio, cpc_visual=(50.0,), ba_visual=(50.0,), shapley=((0.5, 1.0, -0.4),), baseline=(0.2,)):
    shapley = np.array(shapley, np.float32)
    baseline = np.array(baseline, np.float32)
    out = {"score": baseline + shapley.sum(axis=1), "shapley_baseline": baseline,
           "cpc_audio_percentile": np.array(cpc_audio, np.float32), "ba_text_audio_percentile": np.array(ba_audio, np.float32),
           "cpc_visual_percentile": np.array(cpc_visual, np.float32), "ba_text_visual_percentile": np.array(ba_visual, np.float32),
           "interaction_text_audio": np.zeros(len(baseline), np.float32)}
    for i, m in enumerate(("text", "audio", "visual")):
        out[f"shapley_{m}"] = shapley[:, i]
    return out


def test_weights_ramp_from_0_to_1_up_to_the_full_trust_percentile():
    p = FULL_TRUST_PERCENTILE
    out = outputs(cpc_audio=[50.0, 0.0, 0.25 * p, 0.9 * p, p], ba_audio=[50.0] * 5, cpc_visual=[50.0] * 5, ba_visual=[50.0] * 5,
                  shapley=[(0.5, 1.0, -0.4)] * 5, baseline=[0.2] * 5)
    w = trust_weights(out)
    np.testing.assert_allclose(w["audio"], [1.0, 0.0, 0.25, 0.9, 1.0], atol=1e-6)
    np.testing.assert_allclose(w["visual"], 1.0)
    assert trust_weights(out, full_trust_percentile=50.0)["audio"][0] == 1.0


def test_a_voice_unexpected_for_its_words_is_not_distrusted_for_it():
    # BA text -> voice at 0: the voice disagrees with the words, which is information.
    out = outputs(cpc_audio=[60.0], ba_audio=[0.0])
    assert trust_weights(out)["audio"][0] == 1.0


def test_no_stored_quantiles_is_no_evidence():
    w = trust_weights(outputs(cpc_audio=[NAN], ba_audio=[NAN]))
    assert w["audio"][0] == 1.0


def test_a_distrusted_voice_gives_back_its_shapley_value_and_the_values_still_add_up():
    out = outputs(cpc_audio=[0.5 * FULL_TRUST_PERCENTILE], ba_audio=[80.0], shapley=[(0.5, 1.0, -0.4)], baseline=[0.2])
    got = apply_trust(out)
    assert got["fused_score"][0] == pytest.approx(1.3)
    assert got["trust_audio"][0] == pytest.approx(0.5)
    assert got["shapley_audio"][0] == pytest.approx(0.5)
    assert got["score"][0] == pytest.approx(1.3 - 0.5 * 1.0)
    parts = got["shapley_baseline"] + got["shapley_text"] + got["shapley_audio"] + got["shapley_visual"]
    assert got["score"][0] == pytest.approx(parts[0])
    # What describes the network before the weights is left as it was.
    assert got["interaction_text_audio"] is out["interaction_text_audio"]


def test_familiar_clips_keep_their_score_exactly():
    out = outputs(cpc_audio=[30.0], ba_audio=[12.0])
    got = apply_trust(out)
    assert got["score"][0] == out["score"][0]
    assert got["shapley_audio"][0] == out["shapley_audio"][0]


def test_the_weighed_score_stays_in_range():
    out = outputs(cpc_audio=[0.0], ba_audio=[0.0], shapley=[(2.5, -1.0, 0.0)], baseline=[1.0])
    got = apply_trust(out)
    assert got["score"][0] == 3.0


def test_applying_twice_changes_nothing():
    out = apply_trust(outputs(cpc_audio=[0.2], ba_audio=[0.2]))
    assert apply_trust(out) is out
