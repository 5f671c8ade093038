"""app.drift's comparison: known answers on hand-made rows."""
import pytest

from app.drift import change


def row(score, voice, words):
    return {"score": score, "voice_shapley": voice, "transcript": words}


def test_change_between_versions_and_the_shift():
    rows = [{"as_is": row(1.0, 0.2, "kids are talking by the door"), "shifted": row(1.5, 0.1, "kids are talking by the door")},
            {"as_is": row(-1.0, 0.0, "dogs are sitting"), "shifted": row(-1.0, 0.3, "dogs sitting")}]
    shift = change(rows, "as_is", "shifted")
    assert shift["score_abs_mean"] == pytest.approx(0.25) and shift["score_abs_max"] == pytest.approx(0.5)
    assert shift["voice_shapley_abs_mean"] == pytest.approx(0.2)
    assert shift["transcripts_changed"] == 1 and shift["word_edit_rate_mean"] == pytest.approx(1 / 6)  # one of three words lost

    before = [{"as_is": row(0.0, 0.2, "kids are talking by the door")}, {"as_is": row(-1.0, 0.0, "dogs are sitting")}]
    versus = change(rows, "as_is", "as_is", before)
    assert versus["score_abs_mean"] == pytest.approx(0.5) and versus["score_abs_median"] == pytest.approx(0.5)
    assert versus["transcripts_changed"] == 0 and versus["voice_shapley_abs_mean"] == 0
