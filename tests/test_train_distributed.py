"""torchrun: MMIM on 2 CPU processes (gloo) for 2 epochs of the MOSI fixture."""
import json
import os
import subprocess
import sys

import pytest

from model.checkpoint import load_checkpoint
from tests.test_train import REPO, cli_args, fixture_config

pytestmark = pytest.mark.slow  # torchrun


def test_two_processes_train_in_sync_and_write_one_checkpoint(tmp_path, mosi_dir, tiny_bert):
    cfg = fixture_config(tmp_path, mosi_dir, tiny_bert)
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "model.train", *cli_args(cfg)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    run = tmp_path / "run"
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]  # one log, written by rank 0 alone
    assert history[1]["train_task"] < history[0]["train_task"]
    metrics = json.loads((run / "metrics.json").read_text())
    # Gradients were averaged before every step, so both replicas ended equal.
    assert metrics["distributed"] == {"world_size": 2, "batch_size_per_process": 16, "max_parameter_difference": 0.0}
    assert metrics["test"]["mae"] > 0
    model, _ = load_checkpoint(run)
    assert model.reference["audio"].bank.abs().sum() > 0  # training statistics were stored
    assert not list(run.glob("state-*")) and not (run / "resume.json").exists()
    assert "[rank 1]" not in done.stderr.replace("[rank 1]:", "")  # only rank 0 logs progress
