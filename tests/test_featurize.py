"""python -m model.featurize: layout, errors, resume, parallel workers, loader."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from model.featurize.run import main
from model.features import AUDIO_DIM, VISUAL_DIM
from model.data.featurized import load_featurized
from model.features.bench.media import make_audio, make_clip
from tests.conftest import REPO

pytestmark = pytest.mark.slow  # Whisper, through the front end


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    clips = d / "clips"
    (clips / "vidA").mkdir(parents=True)
    make_clip(clips / "vidA" / "1.mp4", seconds=1, size=(320, 240))           # DIR/<video_id>/<clip_id>.<ext>
    make_clip(clips / "vidA" / "2.mkv", seconds=1, size=(320, 240), face=False)  # no face: audio + text only
    make_clip(clips / "vid_B_7.avi", seconds=1, size=(320, 240))              # DIR/<video_id>_<clip_id>.<ext>
    make_audio(clips / "vidC_1.flac", seconds=1.5)
    (clips / "vidD").mkdir()
    (clips / "vidD" / "1.mp4").write_text("not a video")                       # broken
    rows = [("vidA", "1", "great film", 1.5, "train"), ("vidA", "2", "so boring", -2.0, "train"),
            ("vid_B", "7", "it was fine", 0.2, "valid"), ("vidC", "1", "meh", -0.4, "test"),
            ("vidD", "1", "broken", 0.0, "train"), ("vidE", "9", "missing", 0.0, "test")]
    labels = d / "labels.csv"
    with open(labels, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video_id", "clip_id", "text", "label", "mode"])
        w.writerows(rows)
    return clips, labels


def _run(clips, labels, out, *extra):
    main(["--clips", str(clips), "--labels", str(labels), "--out", str(out), "--no-asr", *extra])


def test_featurize_writes_the_dataset_and_resumes(corpus, tmp_path, capsys):
    clips, labels = corpus
    out = tmp_path / "ds"
    _run(clips, labels, out)
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"clips": 6, "written": 4, "skipped_existing": 0, "errors": 2, "out": str(out)}

    spec = json.loads((out / "feature_spec.json").read_text())
    assert spec["audio"]["dim"] == AUDIO_DIM and spec["visual"]["dim"] == VISUAL_DIM
    errors = {r["video_id"]: r["reason"] for r in csv.DictReader(open(out / "errors.csv"))}
    assert "not a media file" in errors["vidD"] and errors["vidE"] == "clip file not found"
    assert not (out / "features" / "vidD__1.npz").exists()  # never a zero row

    samples = list(csv.DictReader(open(out / "samples.csv")))
    assert [s["video_id"] for s in samples] == ["vidA", "vidA", "vid_B", "vidC"]
    assert [s["split"] for s in samples] == ["train", "train", "valid", "test"]
    assert all(s["text_source"] == "given" for s in samples)

    data = load_featurized(out)
    assert [len(data[k]) for k in ("train", "valid", "test")] == [2, 1, 1]
    first, no_face = data["train"]
    assert first.id == "vidA_1" and first.text == "great film" and first.label == 1.5
    assert first.features["audio"].shape[0] in (10, 11) and first.features["audio"].shape[1] == AUDIO_DIM and first.features["visual"].shape == (5, VISUAL_DIM)
    assert len(no_face.features["visual"]) == 0 and len(no_face.features["audio"]) in (10, 11)
    assert data["test"][0].features["visual"].shape == (0, VISUAL_DIM)  # the flac: audio only

    before = {p.name: p.stat().st_mtime_ns for p in (out / "features").glob("*.npz")}
    _run(clips, labels, out)
    summary = json.loads(capsys.readouterr().out)
    assert summary["skipped_existing"] == 4 and summary["written"] == 4
    assert {p.name: p.stat().st_mtime_ns for p in (out / "features").glob("*.npz")} == before
    assert not list((out / "features").glob(".tmp-*"))


def test_parallel_workers_match_serial(corpus, tmp_path, capsys):
    clips, labels = corpus
    _run(clips, labels, tmp_path / "serial")
    _run(clips, labels, tmp_path / "parallel", "--workers", "2")
    capsys.readouterr()
    a, b = load_featurized(tmp_path / "serial"), load_featurized(tmp_path / "parallel")
    for split in a:
        for x, y in zip(a[split], b[split], strict=True):
            assert x.id == y.id
            np.testing.assert_array_equal(x.features["audio"], y.features["audio"])
            np.testing.assert_array_equal(x.features["visual"], y.features["visual"])


def test_changed_front_end_refuses_the_old_folder(corpus, tmp_path, capsys):
    clips, labels = corpus
    _run(clips, labels, tmp_path / "ds", "--limit", "1")
    with pytest.raises(SystemExit, match="different front end"):
        _run(clips, labels, tmp_path / "ds", "--limit", "1", "--video-fps", "2")


def _contents(dataset):
    """Every file of a dataset as comparable values (npz members decoded: zip entries carry write times)."""
    from model.data.featurized import load_clip

    files = {name: (dataset / name).read_text() for name in ("samples.csv", "errors.csv", "feature_spec.json")}
    for path in sorted((dataset / "features").glob("*.npz")):
        clip = load_clip(path)
        files[path.name] = (clip["audio"].tobytes(), clip["visual"].tobytes(), clip["text"], clip["text_source"], clip["quality"])
    return files


def test_dask_local_cluster_matches_the_process_pool_and_resumes(corpus, tmp_path, capsys):
    clips, labels = corpus
    _run(clips, labels, tmp_path / "pool", "--workers", "2")
    _run(clips, labels, tmp_path / "dask", "--dask", "--workers", "2", "--limit", "3")  # interrupted after 3 rows
    capsys.readouterr()
    _run(clips, labels, tmp_path / "dask", "--dask", "--workers", "2")
    summary = json.loads(capsys.readouterr().out)
    assert summary["skipped_existing"] == 3 and summary["written"] == 4 and summary["errors"] == 2
    pool, dask = _contents(tmp_path / "pool"), _contents(tmp_path / "dask")
    assert set(pool) == set(dask)
    for name in pool:
        assert pool[name] == dask[name], name


def test_kill_9_part_way_then_a_rerun_equals_an_uninterrupted_run(corpus, tmp_path, capsys):
    clips, labels = corpus
    _run(clips, labels, tmp_path / "whole")
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "model.featurize", "--clips", str(clips), "--labels", str(labels),
                             "--out", str(out), "--no-asr"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline and not list((out / "features").glob("[!.]*.npz")):
        time.sleep(0.02)
    assert proc.poll() is None, "featurize finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "samples.csv").exists()  # the index comes last
    capsys.readouterr()
    _run(clips, labels, out)
    assert json.loads(capsys.readouterr().out)["skipped_existing"] >= 1
    assert _contents(out) == _contents(tmp_path / "whole")
    assert not list((out / "features").glob(".*"))  # no temporary file left from the kill


def test_a_full_disk_is_a_clear_error_and_a_rerun_with_room_completes(corpus, tmp_path, capsys, small_disk):
    clips, labels = corpus
    _run(clips, labels, tmp_path / "whole")
    whole = sum(p.stat().st_size for p in (tmp_path / "whole").rglob("*") if p.is_file())
    out = small_disk(whole // 2) / "ds"
    with pytest.raises(SystemExit, match="no space left") as error:
        _run(clips, labels, out)
    assert "clips already written are kept" in str(error.value)
    written = list((out / "features").glob("*.npz"))
    assert all(np.load(p)["audio"].ndim == 2 for p in written)  # each one whole
    assert not list(out.rglob(".*")) and not (out / "samples.csv").exists()
    small_disk(64 * 2**20)  # room now
    capsys.readouterr()
    _run(clips, labels, out)
    assert _contents(out) == _contents(tmp_path / "whole")
