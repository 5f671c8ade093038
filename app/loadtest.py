"""`python -m app.loadtest --clients 20 --requests 5`: concurrent gradio_client users on loopback.

Each client uploads a clip with text and calls /predict `--requests` times. The
whole run is bounded by --timeout-s. Prints one JSON object (p50/p95 latency,
throughput, failures) and exits 1 on any failure. Without --url it starts
`python -m app` on a free loopback port with --model-dir and stops it after.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from .config import DEFAULT_MODEL_DIR

log = logging.getLogger("mmim.app.loadtest")
EXAMPLES = Path(__file__).resolve().parent / "examples"
DEFAULT_CLIP = EXAMPLES / "happy_face_happy_voice.mp4"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir: str | Path, port: int | None, *extra: str, log_path: str | Path | None = None,
                 env: dict | None = None) -> subprocess.Popen:
    """`python -m app` as a child process (its pid is the server's), bound to 127.0.0.1 on `port`;
    with port None, the host and port come from `extra` and `env` (GRADIO_SERVER_PORT, ...)."""
    where = ["--host", "127.0.0.1", "--port", str(port)] if port is not None else []
    cmd = [sys.executable, "-m", "app", "--model-dir", str(model_dir), *where, *extra]
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")])), **(env or {})}
    return subprocess.Popen(cmd, cwd=repo, stdout=out, stderr=subprocess.STDOUT, env=env)


def wait_ready(url: str, server: subprocess.Popen | None = None, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            raise RuntimeError(f"the app exited with status {server.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url + "config", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f} s")


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def run_load(url: str, clients: int, requests: int, clip: Path, text: str, timeout_s: float) -> dict:
    from gradio_client import Client, handle_file

    deadline = time.monotonic() + timeout_s
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def user(i: int) -> None:
        try:
            client = Client(url, verbose=False)
        except Exception as e:
            with lock:
                failures.extend([f"client {i}: connect: {e}"] * requests)
            return
        for _ in range(requests):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                with lock:
                    failures.append(f"client {i}: time bound reached")
                continue
            t0 = time.perf_counter()
            try:
                job = client.submit(text, None, handle_file(str(clip)), api_name="/predict")
                result = job.result(timeout=remaining)[-1]
                if not -3.0 <= result["score"] <= 3.0:
                    raise ValueError(f"score {result['score']} outside [-3, 3]")
                with lock:
                    latencies.append(time.perf_counter() - t0)
            except Exception as e:
                with lock:
                    failures.append(f"client {i}: {type(e).__name__}: {e}")

    started = time.perf_counter()
    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 5)
    wall = time.perf_counter() - started
    lat = np.array(latencies) if latencies else np.array([np.nan])
    return {
        "clients": clients, "requests_per_client": requests, "clip": clip.name,
        "ok": len(latencies), "failures": len(failures) + sum(t.is_alive() for t in threads),
        "p50_s": round(float(np.percentile(lat, 50)), 3), "p95_s": round(float(np.percentile(lat, 95)), 3),
        "max_s": round(float(np.max(lat)), 3), "wall_s": round(wall, 2),
        "throughput_rps": round(len(latencies) / wall, 3), "failure_messages": failures[:5],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.loadtest", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=5, help="requests per client")
    parser.add_argument("--url", default="", help="a running app; default: start one on a free port")
    parser.add_argument("--model-dir", default=DEFAULT_MODEL_DIR)
    parser.add_argument("--concurrency", type=int, default=2, help="--concurrency of the server this starts")
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--text", default="I loved it!")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="bound on the whole run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    server = None
    url = args.url.rstrip("/") + "/" if args.url else ""
    try:
        if not url:
            port = free_port()
            server = start_server(args.model_dir, port, "--concurrency", str(args.concurrency), "--queue-size", str(max(64, args.clients * 2)))
            url = f"http://127.0.0.1:{port}/"
            wait_ready(url, server)
        report = run_load(url, args.clients, args.requests, args.clip, args.text, args.timeout_s)
        report["server_concurrency"] = args.concurrency if server else None
    finally:
        if server is not None:
            stop_server(server)
    print(json.dumps(report, indent=2))
    return 0 if report["failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
