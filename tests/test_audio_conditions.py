"""Recording conditions, each checked against what it should do to a known signal."""
import numpy as np
import pytest

from model.data import audio_conditions as ac

RATE = 16000


def tone(freq: float, seconds: float = 2.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def power_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-20)


@pytest.mark.parametrize("snr", [0.0, 10.0, 25.0])
@pytest.mark.parametrize("colour", ["white", "pink", "brown"])
def test_noise_is_added_at_the_asked_snr(snr, colour):
    x = tone(440)
    y = ac.add_noise(x, snr, colour, np.random.default_rng(0))
    assert power_db(x) - power_db(y - x) == pytest.approx(snr, abs=0.01)


def test_noise_colours_have_their_spectral_slopes():
    """Power per octave band: flat x2 per octave for white, flat for pink, /2 for brown."""
    rng = np.random.default_rng(1)
    for colour, slope_db_per_octave in (("white", 3.0), ("pink", 0.0), ("brown", -3.0)):
        spectrum = np.abs(np.fft.rfft(ac.coloured_noise(2**18, colour, rng))) ** 2
        f = np.fft.rfftfreq(2**18)
        bands = [spectrum[(f >= lo) & (f < 2 * lo)].sum() for lo in (0.01, 0.02, 0.04, 0.08)]
        slopes = np.diff(10 * np.log10(bands))
        assert np.allclose(slopes, slope_db_per_octave, atol=0.5), (colour, slopes)


def test_level_is_a_gain_in_db_and_clips_like_a_recorder():
    x = tone(440, amplitude=0.1)
    assert power_db(ac.level(x, -12.0)) - power_db(x) == pytest.approx(-12.0, abs=1e-3)
    loud = ac.level(x, 30.0)
    assert loud.max() == 1.0 and loud.min() == -1.0


def test_telephone_keeps_the_voice_band_and_cuts_outside_it():
    """Equal tones in and out of 300-3400 Hz: after the channel the outside ones are far weaker."""
    mix = tone(1000) + tone(5000) + tone(100)
    spectrum = np.abs(np.fft.rfft(ac.telephone(mix))) ** 2
    freqs = np.fft.rfftfreq(len(mix), 1 / RATE)
    at = lambda f: spectrum[np.abs(freqs - f) <= 5].sum()  # noqa: E731
    assert 10 * np.log10(at(5000) / at(1000)) < -30
    assert 10 * np.log10(at(100) / at(1000)) < -15
    assert abs(power_db(ac.telephone(tone(1000))) - power_db(tone(1000))) < 0.5


def test_room_impulse_decays_sixty_db_in_rt60():
    rng = np.random.default_rng(0)
    rt60 = 0.5
    h = ac.room_impulse(rt60, rng, direct=0.0)
    energy = np.cumsum((h[::-1].astype(np.float64)) ** 2)[::-1]  # Schroeder backward integration
    decay = 10 * np.log10(energy / energy[0])
    t20 = np.argmax(decay <= -20) / RATE  # -20 dB at a third of RT60 for an exponential decay
    assert t20 == pytest.approx(rt60 / 3, rel=0.1)
    assert len(ac.reverb(tone(440), rt60, rng)) == RATE * 2


@pytest.mark.parametrize("codec", sorted(ac.CODECS))
def test_codec_round_trip_keeps_length_and_sound(codec):
    x = tone(440)
    y = ac.codec(x, codec, 32_000)
    assert y.shape == x.shape and y.dtype == np.float32
    # Lossy but the same sound: a 440 Hz tone still dominates the decoded spectrum.
    spectrum = np.abs(np.fft.rfft(y))
    assert np.fft.rfftfreq(len(y), 1 / RATE)[spectrum.argmax()] == pytest.approx(440, abs=2)
    assert abs(power_db(y) - power_db(x)) < 1.5


def test_random_chains_are_ordered_distinct_and_reproducible():
    x = tone(300)
    a, names_a = ac.random_conditions(x, np.random.default_rng(3))
    b, names_b = ac.random_conditions(x, np.random.default_rng(3))
    assert names_a == names_b and np.array_equal(a, b)
    order = ("reverb", "noise", "level", "telephone", "codec")
    seen = [ac.random_conditions(x, np.random.default_rng(s))[1] for s in range(30)]
    assert all(len(set(n)) == len(n) and list(n) == sorted(n, key=order.index) for n in seen)
    assert set().union(*map(set, seen)) == set(ac.CONDITIONS)
    with pytest.raises(ValueError, match="unknown condition"):
        ac.apply(x, "underwater", np.random.default_rng(0))
