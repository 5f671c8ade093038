"""Training on a small real-MOSI fixture with a tiny BERT: the loss goes down,
CPU runs are deterministic, and a run killed with SIGKILL resumes to the same
result as an uninterrupted one."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from model.config import ModelConfig, TrainConfig
from model.train import train

REPO = Path(__file__).resolve().parents[1]


def fixture_config(tmp_path, mosi_dir, tiny_bert, **overrides) -> TrainConfig:
    base = dict(
        benchmark="mosi-std",
        data_dir=str(mosi_dir),
        out_dir=str(tmp_path / "run"),
        limit_train=96,
        epochs=2,
        batch_size=16,
        lr_text=1e-3,
        num_threads=1,
        progress=False,
        model=ModelConfig(text_encoder=tiny_bert),
    )
    base.update(overrides)
    return TrainConfig(**base)


def cli_args(cfg: TrainConfig) -> list[str]:
    return [
        "--benchmark", cfg.benchmark, "--data-dir", cfg.data_dir, "--out-dir", cfg.out_dir,
        "--limit-train", str(cfg.limit_train), "--epochs", str(cfg.epochs), "--batch-size", str(cfg.batch_size),
        "--lr-text", str(cfg.lr_text), "--num-threads", "1", "--no-progress",
        "--text-encoder", cfg.model.text_encoder, "--patience", str(cfg.patience),
    ]


def weights(run_dir) -> dict:
    return load_file(str(Path(run_dir) / "model.safetensors"))


def test_two_epochs_lower_the_loss_and_write_a_checkpoint(tmp_path, mosi_dir, tiny_bert):
    metrics = train(fixture_config(tmp_path, mosi_dir, tiny_bert))
    run = tmp_path / "run"
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[1]["train_task"] < history[0]["train_task"]
    assert {"train_ba_audio_bound", "train_cpc_text", "train_cpc_audio", "train_lld_stage1_audio"} <= set(history[0])
    for name in ("config.json", "model.safetensors", "metrics.json", "curves.png", "text_encoder/config.json"):
        assert (run / name).is_file(), name
    assert not list(run.glob("state-*")) and not (run / "resume.json").exists()
    assert metrics["test"]["mae"] > 0 and set(metrics) >= {"valid", "test", "best_epoch", "epoch_seconds"}
    assert metrics["train_entropy"]["audio"] != 0.0
    stored = weights(run)
    assert stored["reference.audio.bank"].abs().sum() > 0 and stored["reference.text.mean"].abs().sum() > 0
    # Model selection uses validation only: the saved model is the best-validation epoch.
    best = min(history, key=lambda h: h["valid_mae"])
    assert metrics["best_epoch"] == best["epoch"]
    assert metrics["valid"]["mae"] == pytest.approx(best["valid_mae"], abs=1e-6)


def test_cpu_runs_are_deterministic(tmp_path, mosi_dir, tiny_bert):
    train(fixture_config(tmp_path / "a", mosi_dir, tiny_bert, epochs=1))
    train(fixture_config(tmp_path / "b", mosi_dir, tiny_bert, epochs=1))
    a, b = weights(tmp_path / "a" / "run"), weights(tmp_path / "b" / "run")
    assert all((a[k] == b[k]).all() for k in a)


def test_text_only_variant_has_no_audio(tmp_path, mosi_dir, tiny_bert):
    metrics = train(fixture_config(tmp_path, mosi_dir, tiny_bert, epochs=1, variant="text"))
    assert metrics["modalities"] == ["text"]
    assert not any(k.startswith("encoders.") for k in weights(tmp_path / "run"))


@pytest.mark.slow  # a training subprocess, killed and rerun
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path, mosi_dir, tiny_bert):
    cfg = fixture_config(tmp_path / "killed", mosi_dir, tiny_bert, epochs=4, patience=10)
    run = Path(cfg.out_dir)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "model.train", *cli_args(cfg)], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (run / "resume.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = json.loads((run / "resume.json").read_text())["epoch"]
    assert 1 <= done < 4 and not (run / "metrics.json").exists()

    subprocess.run([sys.executable, "-m", "model.train", *cli_args(cfg)], env=env, cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    reference = fixture_config(tmp_path / "clean", mosi_dir, tiny_bert, epochs=4, patience=10)
    train(reference)
    resumed, clean = weights(run), weights(reference.out_dir)
    assert all((resumed[k] == clean[k]).all() for k in clean)
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4]


def test_modalities_are_configurable_and_mi_terms_follow(tmp_path, mosi_dir, tiny_bert):
    cfg = fixture_config(tmp_path, mosi_dir, tiny_bert, benchmark="mosi-ctx", modalities=("text", "visual"), epochs=1)
    metrics = train(cfg)
    assert metrics["modalities"] == ["text", "visual"]
    logged = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert "train_ba_visual_bound" in logged and "train_cpc_visual" in logged
    assert not any("audio" in k for k in logged)
    with pytest.raises(ValueError, match="no \\['visual'\\]"):
        train(fixture_config(tmp_path / "x", mosi_dir, tiny_bert, modalities=("text", "visual")))


def test_words_first_target_rule():
    import torch

    from model.data.targets import words_first

    labels = torch.tensor([[3.0, -2.0, -2.0], [0.0, -2.0, 1.0], [0.75, -2.0, -2.0], [2.0, -1.0, 1.0], [1.0, 2.0, 0.0]])
    present = torch.tensor([[1, 1, 1], [1, 1, 1], [1, 1, 1], [0, 1, 1], [1, 0, 0]], dtype=torch.bool)
    got = words_first(labels, present, ("text", "audio", "visual"))
    # clear words decide; neutral words: half words, half the non-verbal mean; 0.75 is half clear
    # (w = 0.75); no text: the non-verbal mean; text alone: the text.
    torch.testing.assert_close(got, torch.tensor([3.0, -0.25, 0.75 * 0.75 + 0.25 * -2.0, 0.0, 1.0]))


def test_unimodal_heads_are_trained(tmp_path, mosi_dir, tiny_bert):
    """The unimodal loss reaches every head (it must not be overwritten by the MI terms)."""
    import torch

    from model.data import Collator, load_mosi
    from model.mmim import MMIM
    from model.train import build_model_config
    from model.train_step import make_optimizers, train_step
    from transformers import AutoTokenizer

    cfg = fixture_config(tmp_path, mosi_dir, tiny_bert, benchmark="mosi-ctx", unimodal_weight=1.0)
    splits = load_mosi(mosi_dir, "mosi-ctx")
    model = MMIM(build_model_config(cfg, splits))
    assert set(model.unimodal) == {"text", "audio", "visual"}
    collate = Collator(AutoTokenizer.from_pretrained(tiny_bert), 50, model.config.modalities)
    before = {m: head.weight.detach().clone() for m, head in model.unimodal.items()}
    opt_main, opt_mmilb = make_optimizers(model, cfg)
    logs = train_step(model, collate(splits["train"][:16]), cfg, opt_main, opt_mmilb)
    assert {"unimodal_text", "unimodal_audio", "unimodal_visual"} <= set(logs)
    # The loss that was minimised holds every term: task - alpha CPC - beta BA + w unimodal.
    cpc = sum(v for k, v in logs.items() if k.startswith("cpc_"))
    ba = sum(v for k, v in logs.items() if k.endswith("_bound"))
    unimodal = sum(v for k, v in logs.items() if k.startswith("unimodal_"))
    assert logs["loss"] == pytest.approx(logs["task"] - cfg.alpha * cpc - cfg.beta * ba + unimodal, rel=1e-5)
    for m, head in model.unimodal.items():
        assert not torch.equal(before[m], head.weight), m


@pytest.mark.slow  # trains three times
def test_a_full_disk_is_a_clear_error_and_a_rerun_with_room_completes(tmp_path, mosi_dir, tiny_bert, small_disk):
    """The run folder on a disk that fills during training: a clear error, every file in it whole
    (no temporary files, the resume point intact), and the same command on a roomier disk
    resumes to the result of an uninterrupted run."""
    reference = fixture_config(tmp_path / "clean", mosi_dir, tiny_bert, epochs=3, patience=10)
    train(reference)
    checkpoint = sum(p.stat().st_size for p in Path(reference.out_dir).rglob("*") if p.is_file())
    disk = small_disk(int(checkpoint * 1.6))  # room for the checkpoint, not for every resume point too
    cfg = fixture_config(disk, mosi_dir, tiny_bert, epochs=3, patience=10)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "model.train", *cli_args(cfg)], env=env, cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 1 and "error: no space left on the device" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    run = Path(cfg.out_dir)
    assert not list(run.rglob(".*")), list(run.rglob(".*"))  # nothing half-written left behind
    if (run / "resume.json").exists():  # the resume point it names is whole
        state = run / json.loads((run / "resume.json").read_text())["dir"]
        assert {p.name for p in state.iterdir()} == {"model.safetensors", "optimizer.pt"}
        load_file(str(state / "model.safetensors"))
    small_disk(256 * 2**20)
    subprocess.run([sys.executable, "-m", "model.train", *cli_args(cfg)], env=env, cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resumed, clean = weights(run), weights(reference.out_dir)
    assert all((resumed[k] == clean[k]).all() for k in clean)


def test_a_run_folder_is_trained_by_one_process_at_a_time(tmp_path, mosi_dir, tiny_bert):
    from model.files import InUseError

    cfg = fixture_config(tmp_path, mosi_dir, tiny_bert, epochs=1, limit_train=32)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from model.files import held_exclusively\n"
         f"with held_exclusively({str(Path(cfg.out_dir) / 'train.lock')!r}, 'x'):\n print('held', flush=True); time.sleep(60)"],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InUseError, match=f"run folder .* in use by another process \\(pid {holder.pid}\\)"):
            train(cfg)
        assert not (Path(cfg.out_dir) / "model.safetensors").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    train(cfg)  # a killed holder leaves no stale lock
    assert (Path(cfg.out_dir) / "metrics.json").is_file()
