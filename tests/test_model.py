"""MMIM forward pass, MI terms and checkpoint round trip."""
import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from model.checkpoint import load_checkpoint, save_checkpoint
from model.config import ModelConfig
from model.data import Collator, Sample
from model.mmim import MMIM

MODALITIES = ("text", "audio", "visual")


def make_samples(n: int, seed: int = 0) -> list[Sample]:
    rng = np.random.default_rng(seed)
    texts = ["it was really good", "i did not like it at all", "okay", "the plot was a mess but the acting was great"]
    return [
        Sample(
            id=str(i),
            text=texts[i % len(texts)],
            label=float(rng.uniform(-3, 3)),
            features={
                "audio": rng.normal(size=(int(rng.integers(1, 6)), 7)).astype(np.float32),
                "visual": rng.normal(size=(int(rng.integers(1, 4)), 5)).astype(np.float32),
            },
        )
        for i in range(n)
    ]


@pytest.fixture()
def model_and_collate(tiny_bert):
    torch.manual_seed(0)
    cfg = ModelConfig(text_encoder=tiny_bert, modalities=MODALITIES, audio_dim=7, visual_dim=5, seq_bidirectional=True)
    model = MMIM(cfg).eval()
    collate = Collator(AutoTokenizer.from_pretrained(tiny_bert), cfg.max_text_len, MODALITIES)
    return model, collate


def test_forward_at_batch_size_one(model_and_collate):
    model, collate = model_and_collate
    batch = collate(make_samples(1))
    out = model(**batch.model_inputs())
    assert out["score"].shape == (1,)
    assert out["fusion"].shape == (1, 128)
    assert out["h_text"].shape == (1, 32) and out["h_audio"].shape == (1, 16)
    terms = model.mi_terms(out, batch.labels)
    assert all(torch.isfinite(v) for v in terms.values())
    # InfoNCE over one row is log 1 = 0 and carries no signal: the term is left out.
    assert not any(k.startswith("cpc_") for k in terms)


def test_batch_results_do_not_depend_on_batch_mates(model_and_collate):
    model, collate = model_and_collate
    samples = make_samples(4)
    together = model(**collate(samples).model_inputs())["score"]
    alone = torch.cat([model(**collate([s]).model_inputs())["score"] for s in samples])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


def test_scores_are_in_range_and_mi_terms_have_gradients(model_and_collate):
    model, collate = model_and_collate
    model.train()
    batch = collate(make_samples(24))
    out = model(**batch.model_inputs())
    assert out["score"].abs().max() <= 3.0
    terms = model.mi_terms(out, batch.labels)
    assert set(terms) >= {"ba_audio_bound", "ba_visual_bound", "cpc_text", "cpc_audio", "cpc_visual"}
    (terms["ba_audio_bound"] + terms["cpc_visual"]).backward()
    assert model.ba["audio"].project[0].weight.grad is not None  # the projection is trained (defect 3)
    assert model.encoders["audio"].proj.weight.grad is not None


def test_likelihood_stage_only_touches_q(model_and_collate):
    model, collate = model_and_collate
    batch = collate(make_samples(8))
    out = model(**batch.model_inputs())
    sum(model.likelihood_terms(out).values()).backward()
    groups = model.parameter_groups()
    assert all(p.grad is not None for p in groups["mmilb"])
    assert all(p.grad is None for p in groups["text"] + groups["main"])
    assert len(groups["text"]) + len(groups["mmilb"]) + len(groups["main"]) == len(list(model.parameters()))


def test_missing_stream_is_a_clear_error(model_and_collate):
    model, collate = model_and_collate
    inputs = collate(make_samples(2)).model_inputs()
    del inputs["visual"]
    with pytest.raises(ValueError, match="visual"):
        model(**inputs)


def test_save_load_gives_identical_outputs(model_and_collate, tmp_path):
    model, collate = model_and_collate
    model.encoders["audio"].set_normalisation(torch.full((7,), 0.3), torch.full((7,), 2.0))
    model.ba["audio"].entropy.fill_(1.25)
    save_checkpoint(model, collate.tokenizer, tmp_path / "ckpt")
    config_text = (tmp_path / "ckpt" / "config.json").read_text()
    assert tiny_bert_path_not_in(config_text, model)
    loaded, tokenizer = load_checkpoint(tmp_path / "ckpt")
    batch = Collator(tokenizer, 50, MODALITIES)(make_samples(3))
    a = model(**batch.model_inputs())
    b = loaded(**batch.model_inputs())
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert loaded.ba["audio"].entropy.item() == 1.25


def tiny_bert_path_not_in(config_text: str, model) -> bool:
    # The checkpoint points at its own copy of the encoder config, not at this machine.
    return model.config.text_encoder not in config_text


def test_config_rejects_bad_modalities():
    with pytest.raises(ValueError):
        ModelConfig(modalities=("audio",))
    with pytest.raises(ValueError):
        ModelConfig(modalities=("text", "audio"))  # audio_dim unset


def test_diagnostics_known_answers(model_and_collate):
    model, collate = model_and_collate
    batch = collate(make_samples(3))
    out = model(**batch.model_inputs())
    # A clip whose h_m is the training mean contributes nothing through m.
    model.reference["audio"].mean.copy_(out["h_audio"][0])
    # A bank made of the clip's own representation: every candidate ties, so CPC = log K - log K = 0.
    model.reference["visual"].bank.copy_(out["h_visual"][1].expand_as(model.reference["visual"].bank))
    model.ba["audio"].entropy.fill_(0.5)
    diag = model.diagnostics(out)
    assert diag["contribution_audio"][0].item() == pytest.approx(0.0, abs=1e-6)
    assert diag["cpc_visual"][1].item() == pytest.approx(0.0, abs=1e-5)
    log_k = np.log(model.config.diagnostic_bank + 1)
    for m in MODALITIES:
        assert diag[f"cpc_{m}"].shape == (3,) and (diag[f"cpc_{m}"] <= log_k + 1e-5).all()
    expected = model.ba["audio"].log_likelihood(out["h_text"], out["h_audio"]) + 0.5
    torch.testing.assert_close(diag["ba_text_audio"], expected)
    assert set(diag) == {"ba_text_audio", "ba_text_visual", "cpc_text", "cpc_audio", "cpc_visual",
                         "contribution_text", "contribution_audio", "contribution_visual",
                         "ba_text_audio_percentile", "ba_text_visual_percentile", "cpc_text_percentile",
                         "cpc_audio_percentile", "cpc_visual_percentile", "shapley_text", "shapley_audio",
                         "shapley_visual", "shapley_baseline", "interaction_text_audio", "interaction_text_visual",
                         "interaction_audio_visual"}
    # No quantiles stored yet: percentiles are NaN, never a made-up number.
    assert torch.isnan(diag["cpc_text_percentile"]).all()


def without(sample: Sample, modality: str) -> Sample:
    """The sample with one modality absent: empty text, or a (0, d) stream."""
    if modality == "text":
        return Sample(sample.id, "", sample.label, dict(sample.features))
    feats = dict(sample.features)
    feats[modality] = feats[modality][:0]
    return Sample(sample.id, sample.text, sample.label, feats)


@pytest.mark.parametrize("modality", MODALITIES)
def test_absent_modality_uses_the_learned_vector_and_contributes_nothing(model_and_collate, modality):
    model, collate = model_and_collate
    with torch.no_grad():
        model.absent[modality].normal_()
    samples = make_samples(3)
    batch = collate([without(samples[0], modality), *samples[1:]])
    out = model(**batch.model_inputs())
    assert out[f"present_{modality}"].tolist() == [False, True, True]
    torch.testing.assert_close(out[f"h_{modality}"][0], model.absent[modality])
    diag = model.diagnostics(out)
    assert diag[f"contribution_{modality}"][0].item() == 0.0
    assert diag[f"contribution_{modality}"][1:].abs().sum() > 0
    # The absent row's score does not depend on what its text or padding holds.
    other = without(Sample("x", "completely different words here", 0.0, samples[2].features), modality)
    again = model(**collate([other]).model_inputs())
    if modality == "text":
        torch.testing.assert_close(again["score"], model(**collate([without(samples[2], "text")]).model_inputs())["score"])
    assert torch.isfinite(out["score"]).all()


def test_mi_terms_use_present_rows_only(model_and_collate):
    model, collate = model_and_collate
    samples = make_samples(6)
    full = collate(samples)
    out_full = model(**full.model_inputs())
    # Rows 0-2 lose audio: the audio CPC must equal the CPC over rows 3-5 alone.
    partial = collate([without(s, "audio") for s in samples[:3]] + samples[3:])
    out = model(**partial.model_inputs())
    terms = model.mi_terms(out, partial.labels)
    expected = model.cpc["audio"](out["fusion"][3:], out_full["h_audio"][3:])
    torch.testing.assert_close(terms["cpc_audio"], expected)
    # One present row is too few for InfoNCE: the term is left out, not faked.
    lone = collate([without(s, "audio") for s in samples[:5]] + samples[5:])
    assert "cpc_audio" not in model.mi_terms(model(**lone.model_inputs()), lone.labels)


def test_modality_dropout_never_hides_every_modality(model_and_collate):
    from model.train_step import drop_modalities

    _, collate = model_and_collate
    samples = make_samples(64)
    samples[0] = without(without(samples[0], "audio"), "visual")  # text is its only modality
    batch = drop_modalities(collate(samples), MODALITIES, 0.9, torch.Generator().manual_seed(0))
    present = torch.stack(
        [batch.attention_mask[:, 0] > 0, batch.audio_lengths > 0, batch.visual_lengths > 0], dim=1
    )
    assert present.any(1).all()
    assert present[0].tolist() == [True, False, False]
    # With p = 0.9 most modalities go, so the guard above is exercised.
    assert present.float().mean() < 0.5


@pytest.mark.parametrize("absent", [None, *MODALITIES])
def test_model_shapley_is_efficient_and_absent_modalities_are_null_players(model_and_collate, absent):
    model, collate = model_and_collate
    with torch.no_grad():
        for m in MODALITIES:
            model.reference[m].mean.normal_()
            model.absent[m].normal_()
    samples = make_samples(4)
    if absent:
        samples[0] = without(samples[0], absent)
    out = model(**collate(samples).model_inputs())
    diag = model.diagnostics(out)
    total = sum(diag[f"shapley_{m}"] for m in MODALITIES)
    torch.testing.assert_close(total, out["score"] - diag["shapley_baseline"], atol=1e-5, rtol=0)
    torch.testing.assert_close(model.coalition_scores(out)[-1], out["score"], atol=1e-6, rtol=0)
    assert any(diag[f"shapley_{m}"].abs().max() > 1e-3 for m in MODALITIES)
    if absent:
        assert diag[f"shapley_{absent}"][0].abs().item() < 1e-6
        for name, value in diag.items():
            if name.startswith("interaction_") and absent in name:
                assert value[0].abs().item() < 1e-6
