"""A bounded soak of the real app on loopback: what grows over hundreds of requests.

    python -m app.soak --requests 600 --clients 6 --out model/experiments/results/soak.json

It starts `python -m app` with its own temporary folder (TMPDIR and GRADIO_TEMP_DIR), then
concurrent `gradio_client` clients send a mix of requests: one clip with text, the same clip
without text (Whisper transcribes), the timeline, a batch zip, and about 10 % bad inputs (a
corrupt video, no input at all), which must fail with a clear error. It reports p50/p95 per
kind, and the server's RSS, temporary files, open file descriptors and threads after a
warm-up round and at the end, so that growth shows as a difference.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np

from .config import DEFAULT_MODEL_DIR
from .loadtest import EXAMPLES, free_port, start_server, stop_server, wait_ready

log = logging.getLogger("mmim.app.soak")
# Request kinds and their share of the mix.
MIX = {"clip_text": 0.30, "clip_no_text": 0.20, "timeline": 0.15, "batch": 0.15, "bad_file": 0.05, "no_input": 0.05,
       "text_only": 0.10}
BAD = {"bad_file", "no_input"}


class ProcessProbe:
    """What a process holds, read from /proc: RSS, threads, open file descriptors; and the
    files under the folders it writes its temporary files to."""

    def __init__(self, pid: int, temp_dirs: list[Path]):
        self.pid, self.temp_dirs = pid, temp_dirs

    def snapshot(self) -> dict:
        status = dict(line.split(":", 1) for line in Path(f"/proc/{self.pid}/status").read_text().splitlines() if ":" in line)
        return {
            "rss_mb": round(int(status["VmRSS"].split()[0]) / 1024, 1),
            "threads": int(status["Threads"]),
            "fds": len(os.listdir(f"/proc/{self.pid}/fd")),
            "temp_files": sum(1 for d in self.temp_dirs for p in d.rglob("*") if p.is_file()),
        }


def make_inputs(folder: Path) -> dict[str, Path]:
    """The files the requests send: real example clips, a zip of them, and a corrupt video."""
    clip = EXAMPLES / "happy_face_happy_voice.mp4"
    batch = folder / "batch.zip"
    with zipfile.ZipFile(batch, "w") as z:
        for name in ("happy_face_happy_voice.mp4", "ravdess_neutral.wav"):
            z.write(EXAMPLES / name, name)
    bad = folder / "corrupt.mp4"
    bad.write_bytes(clip.read_bytes()[:2000] + b"\x00" * 3000)
    return {"clip": clip, "batch": batch, "bad": bad}


def request(client, kind: str, files: dict[str, Path]) -> None:
    """One request of a kind; raises when it fails (bad kinds are expected to)."""
    from gradio_client import handle_file

    if kind == "clip_text":
        result = client.predict("I loved it, what a wonderful day", None, handle_file(str(files["clip"])), api_name="/predict")[-1]
    elif kind == "clip_no_text":
        result = client.predict("", None, handle_file(str(files["clip"])), api_name="/predict")[-1]
    elif kind == "text_only":
        result = client.predict("The ending was dull and far too long.", None, None, api_name="/predict")[-1]
    elif kind == "timeline":
        result = client.predict(handle_file(str(files["clip"])), api_name="/timeline")[-1]
    elif kind == "batch":
        _, preview = client.predict([handle_file(str(files["batch"]))], None, False, api_name="/batch")
        if len(preview["data"]) != 2:
            raise ValueError(f"batch returned {len(preview['data'])} rows, expected 2")
        return
    elif kind == "bad_file":
        client.predict("", None, handle_file(str(files["bad"])), api_name="/predict")
        return
    else:  # no_input
        client.predict("", None, None, api_name="/predict")
        return
    if not -3.0 <= result["score"] <= 3.0:
        raise ValueError(f"score {result['score']} outside [-3, 3]")


def run_soak(url: str, probe: ProcessProbe, files: dict[str, Path], requests: int, clients: int, seed: int = 0,
             timeout_s: float = 3600.0) -> dict:
    from gradio_client import Client

    rng = random.Random(seed)
    kinds = list(MIX)
    # A warm-up round of every kind first: the growth measured after it is the steady state's.
    plan = kinds + rng.choices(kinds, weights=[MIX[k] for k in kinds], k=max(0, requests - len(kinds)))
    warm, rest = plan[: len(kinds)], plan[len(kinds):]
    lock, outcomes = threading.Lock(), []
    deadline = time.monotonic() + timeout_s

    def work(queue: list[str], client) -> None:
        while True:
            with lock:
                if not queue or time.monotonic() > deadline:
                    return
                kind = queue.pop()
            t0 = time.perf_counter()
            try:
                request(client, kind, files)
                error = None
            except Exception as e:  # noqa: BLE001 - every failure is counted and reported
                error = f"{type(e).__name__}: {str(e)[:200]}"
            with lock:
                outcomes.append({"kind": kind, "seconds": time.perf_counter() - t0, "error": error})

    connected = [Client(url, verbose=False) for _ in range(clients)]
    work(list(warm), connected[0])
    time.sleep(1.0)
    start = probe.snapshot()
    started = time.perf_counter()
    series, running = [{"requests": len(outcomes), **start}], threading.Event()

    def sample() -> None:  # the curve tells a plateau (warming up) from a leak (steady growth)
        while not running.wait(10.0):
            series.append({"requests": len(outcomes), **probe.snapshot()})

    sampler = threading.Thread(target=sample, daemon=True)
    threads = [threading.Thread(target=work, args=(rest, c), daemon=True) for c in connected]
    sampler.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 10)
    running.set()
    wall = time.perf_counter() - started
    time.sleep(2.0)  # let finished requests release what they held
    end = probe.snapshot()
    return {"requests": len(outcomes), "clients": clients, "wall_s": round(wall, 1),
            "kinds": summarise(outcomes), "after_warmup": start, "end": end,
            "growth": {k: round(end[k] - start[k], 1) for k in start}, "series": series + [{"requests": len(outcomes), **end}]}


def summarise(outcomes: list[dict]) -> dict:
    out = {}
    for kind in MIX:
        rows = [o for o in outcomes if o["kind"] == kind]
        if not rows:
            continue
        seconds = np.array([o["seconds"] for o in rows])
        failed = [o for o in rows if o["error"]]
        out[kind] = {
            "n": len(rows), "p50_s": round(float(np.percentile(seconds, 50)), 3),
            "p95_s": round(float(np.percentile(seconds, 95)), 3),
            # A bad input must fail (with a clear error); any other request must succeed.
            "unexpected": (len(rows) - len(failed)) if kind in BAD else len(failed),
            "errors": sorted({o["error"] for o in failed})[:3],
        }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--model-dir", default=DEFAULT_MODEL_DIR)
    parser.add_argument("--out", type=Path, help="write the report JSON here too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="mmim-soak-") as tmp:
        tmp = Path(tmp)
        server_tmp = tmp / "server"
        server_tmp.mkdir()
        port = free_port()
        server = start_server(args.model_dir, port, "--threads", "1", "--queue-size", str(max(64, 4 * args.clients)),
                              log_path=tmp / "server.log", env={"TMPDIR": str(server_tmp), "GRADIO_TEMP_DIR": str(server_tmp)})
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_ready(url, server)
            report = run_soak(url, ProcessProbe(server.pid, [server_tmp]), make_inputs(tmp), args.requests, args.clients)
        finally:
            stop_server(server)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if all(k["unexpected"] == 0 for k in report["kinds"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
