"""TupleInfoNCE: the loss on a hand-computed case, disturbed negatives, derangements,
the REINFORCE step, and a short pre-train + train run on a real-MOSI fixture."""
import json
import math

import pytest
import torch
from safetensors.torch import load_file

from model.checkpoint import load_checkpoint
from model.config import ModelConfig, TrainConfig, TupleNCEConfig
from model.train import train
from model.tuple_nce import (
    ENCODERS_FILE,
    HEADS_FILE,
    REPORT_FILE,
    TupleNCEError,
    derangement,
    discrimination_accuracy,
    disturb,
    reinforce_step,
    tuple_embedding,
    tuple_nce_loss,
)


def test_loss_equals_hand_computed_value():
    # Two tuples, two modalities, unit blocks: z0 = (1,0 | 1,0)/sqrt2, z1 = (0,1 | 1,0)/sqrt2.
    blocks = {"text": torch.tensor([[1.0, 0.0], [0.0, 1.0]]), "audio": torch.tensor([[1.0, 0.0], [1.0, 0.0]])}
    swap = torch.tensor([1, 0])
    log_alpha = torch.tensor([math.log(2.0), 0.0, math.log(3.0)])
    loss = tuple_nce_loss(blocks, blocks, log_alpha, {"text": swap, "audio": swap}, tau=1.0)
    # For either anchor: positive 1; other tuple 0.5 (x2); text-disturbed 0.5 (x1);
    # audio-disturbed is the tuple itself (both audio blocks equal): 1 (x3).
    expected = -1.0 + math.log(math.e + 2 * math.exp(0.5) + math.exp(0.5) + 3 * math.e)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    # tau scales the similarities, not the log-weights.
    loss = tuple_nce_loss(blocks, blocks, log_alpha, {"text": swap, "audio": swap}, tau=0.5)
    expected = -2.0 + math.log(math.exp(2) + 2 * math.e + math.e + 3 * math.exp(2))
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_log_weight_equals_duplicating_a_negative():
    torch.manual_seed(0)
    make = lambda: {m: torch.nn.functional.normalize(torch.randn(4, 3), dim=-1) for m in ("text", "audio")}  # noqa: E731
    anchor, positive = make(), make()
    perms = {"text": torch.tensor([1, 2, 3, 0]), "audio": torch.tensor([3, 0, 1, 2])}
    weighted = tuple_nce_loss(anchor, positive, torch.tensor([0.0, 0.0, math.log(2.0)]), perms, tau=0.2)
    # The same softmax built by hand with the audio-disturbed column written twice.
    z, p = tuple_embedding(anchor), tuple_embedding(positive)
    d_text = (z * tuple_embedding(disturb(positive, "text", perms["text"]))).sum(-1, keepdim=True)
    d_audio = (z * tuple_embedding(disturb(positive, "audio", perms["audio"]))).sum(-1, keepdim=True)
    logits = torch.cat([z @ p.T, d_text, d_audio, d_audio], dim=1) / 0.2
    duplicated = torch.nn.functional.cross_entropy(logits, torch.arange(4))
    assert weighted.item() == pytest.approx(duplicated.item(), abs=1e-6)


def test_disturbed_tuple_differs_from_anchor_only_in_modality_k():
    generator = torch.Generator().manual_seed(1)
    blocks = {m: torch.randn(6, 4, generator=generator) for m in ("text", "audio", "visual")}
    for i, k in enumerate(blocks):
        perm = derangement(6, generator)
        disturbed = tuple_embedding(disturb(blocks, k, perm))
        diff = (disturbed - tuple_embedding(blocks)).abs().reshape(6, 3, 4).sum(-1)
        assert (diff[:, i] > 0).all()  # every row's modality k changed
        assert (diff[:, [j for j in range(3) if j != i]] == 0).all()  # nothing else did


def test_derangement_has_no_fixed_point():
    generator = torch.Generator().manual_seed(0)
    assert derangement(2, generator).tolist() == [1, 0]
    for n in list(range(2, 20)) + [32, 243]:
        for _ in range(20):
            perm = derangement(n, generator)
            assert sorted(perm.tolist()) == list(range(n))
            assert (perm != torch.arange(n)).all()
    with pytest.raises(TupleNCEError):
        derangement(1, generator)


def test_accuracy_counts_true_tuple_above_disturbed():
    clean = {"text": torch.eye(3), "audio": torch.eye(3)}
    # Row 0's audio anchor points at row 1's audio: only the audio comparison of row 0 fails.
    anchor = {"text": torch.eye(3), "audio": torch.eye(3)[[1, 1, 2]]}
    perms = {"text": torch.tensor([1, 2, 0]), "audio": torch.tensor([1, 2, 0])}
    acc = discrimination_accuracy(anchor, clean, perms)
    assert acc["text"] == pytest.approx(1.0)
    assert acc["audio"] == pytest.approx(2 / 3)


def test_reinforce_step_known_answer_and_moves_toward_higher_reward():
    mu, sigma, lr = torch.zeros(3), 0.5, 0.1
    s = torch.tensor([0.2, -0.4, 0.1])
    # Two samples, mu +- s; the first wins (R 1 vs 0, baseline 0.5): step = lr * 0.5 * s / sigma^2.
    new = reinforce_step(mu, torch.stack([mu + s, mu - s]), torch.tensor([1.0, 0.0]), sigma, lr)
    assert torch.allclose(new, lr * 0.5 * s / sigma**2)

    target = torch.tensor([1.0, -1.0, 0.5])
    reward = lambda a: -((a - target) ** 2).sum(-1)  # noqa: E731
    generator = torch.Generator().manual_seed(0)
    mu = torch.zeros(3)
    for _ in range(100):
        samples = mu + sigma * torch.randn(8, 3, generator=generator)
        mu = reinforce_step(mu, samples, reward(samples), sigma, lr=0.02)
    assert (mu - target).norm() < 0.25 * target.norm()
    assert reward(mu) > reward(torch.zeros(3))


def test_train_with_tuple_nce_writes_report_and_reuses_it(tmp_path, mosi_dir, tiny_bert):
    cfg = TrainConfig(
        benchmark="mosi-ctx",
        data_dir=str(mosi_dir),
        out_dir=str(tmp_path / "run"),
        limit_train=64,
        epochs=1,
        batch_size=16,
        num_threads=1,
        progress=False,
        model=ModelConfig(text_encoder=tiny_bert),
        pretrain="tuple_nce",
        tuple_nce=TupleNCEConfig(nce_rounds=2, nce_candidates=2, nce_steps=2, nce_batch_size=16, nce_eval_repeats=1),
    )
    metrics = train(cfg)
    run = tmp_path / "run"
    report = metrics["tuple_nce"]
    assert report["reused"] is False
    assert [r["round"] for r in report["rounds"]] == [1, 2]
    assert all(len(r["mu"]) == 4 and len(r["reward"]) == 2 for r in report["rounds"])
    for split in ("A_valid", "A_test", "A_valid_before"):
        assert set(report[split]) == {"text", "audio", "visual"}
        assert all(0.0 <= v <= 1.0 for v in report[split].values())
    assert report["reward"] == pytest.approx(sum(report["A_valid"].values()))
    assert json.loads((run / "metrics.json").read_text())["tuple_nce"]["A_test"] == report["A_test"]
    for name in (REPORT_FILE, ENCODERS_FILE, HEADS_FILE):
        assert (run / name).is_file(), name
    # The heads stay out of MMIM: the checkpoint loads strictly and has no projection weights.
    model, _ = load_checkpoint(run)
    assert set(model.state_dict()) == set(load_file(str(run / "model.safetensors")))
    assert set(load_file(str(run / ENCODERS_FILE))) <= set(model.state_dict())

    # A rerun of the same command (resume) loads the saved encoders instead of pre-training,
    # and, on CPU, ends with the same weights.
    first = load_file(str(run / "model.safetensors"))
    (run / "metrics.json").unlink()
    again = train(cfg)
    assert again["tuple_nce"]["reused"] is True
    assert again["tuple_nce"]["A_valid"] == report["A_valid"]
    second = load_file(str(run / "model.safetensors"))
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_augment_masks_time_drops_tokens_and_keeps_padding():
    from types import SimpleNamespace

    from model.data import Batch
    from model.encoders import SequenceEncoder
    from model.tuple_nce import augment

    encoder = SequenceEncoder(3, 4, 4, 1, False, 0.0)
    encoder.set_normalisation(torch.full((3,), 7.0), torch.ones(3))
    batch = Batch(
        input_ids=torch.tensor([[101, 5, 6, 7, 8, 102, 0]] * 2),
        attention_mask=torch.tensor([[1, 1, 1, 1, 1, 1, 0]] * 2),
        labels=torch.zeros(2),
        audio=torch.ones(2, 5, 3),
        audio_lengths=torch.tensor([5, 3]),
    )
    cfg = TupleNCEConfig(nce_noise_std=0.0, nce_time_mask=0.2, nce_token_dropout=0.99)
    out = augment(batch, SimpleNamespace(encoders={"audio": encoder}), cfg, torch.Generator().manual_seed(0),
                  keep_ids=torch.tensor([0, 101, 102]))
    # Special tokens and padding keep their mask; (almost) every word is dropped.
    assert (out.attention_mask[:, [0, 5]] == 1).all() and (out.attention_mask[:, 6] == 0).all()
    assert out.attention_mask[:, 1:5].sum() <= 1
    # round(0.2 * 5) = 1 and round(0.2 * 3) = 1 frame take the training mean; padding stays 0.
    at_mean = (out.audio == 7.0).all(-1)
    assert at_mean[0].sum() == 1 and at_mean[1, :3].sum() == 1
    assert (out.audio[1, 3:] == 0).all()
    assert torch.equal(batch.audio, torch.ones(2, 5, 3))  # the input batch is untouched
