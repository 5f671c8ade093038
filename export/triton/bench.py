"""Start the bundled Triton server on an exported model and measure it under load.

    python -m export.triton.bench weights/mmim-clip --clients 8 --requests 20 --out model/experiments/results/triton_bench.json

Writes a python-backend repository for the model, starts `export/triton/serve.sh` on it
(bound to 127.0.0.1, metrics off), checks Triton's outputs against ONNX Runtime, then
runs `clients` threads × `requests` single-clip requests, ragged (each request its own
token and frame counts) and padded (tokens to max_text_len, frames to a fixed count),
and reports requests/s, p50/p95 latency and how many requests Triton merged per
execution. The server is stopped by its PID at the end.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from export.samples import serving_samples
from export.triton.repository import write_triton_repository
from export.triton.client import TritonModel
from export.trust import apply_trust

SERVE_SCRIPT = Path(__file__).with_name("serve.sh")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TritonServer:
    """The bundled tritonserver on `repo`, as a context manager; stopped by PID on exit."""

    def __init__(self, repo: str | Path, venv: str | None = None, startup_s: float = 120.0, log_path: str | Path | None = None):
        self.repo, self.startup_s = Path(repo), startup_s
        self.http_port, self.grpc_port = free_port(), free_port()
        self.url = f"127.0.0.1:{self.http_port}"
        self.env = {**os.environ, "TRITON_HTTP_PORT": str(self.http_port), "TRITON_GRPC_PORT": str(self.grpc_port)}
        if venv:
            self.env["MMIM_TRITON_VENV"] = str(venv)
        self.log_path = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="tritonserver-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "TritonServer":
        import tritonclient.http as http

        log_file = open(self.log_path, "w")
        # serve.sh execs the server, so this PID is tritonserver's own.
        self.process = subprocess.Popen(["bash", str(SERVE_SCRIPT), str(self.repo)], env=self.env,
                                        stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        log_file.close()
        client = http.InferenceServerClient(self.url)
        deadline = time.monotonic() + self.startup_s
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"tritonserver exited with {self.process.returncode}: {self.tail()}")
                try:
                    if client.is_server_ready():
                        return self
                except Exception:  # not listening yet
                    pass
                time.sleep(0.25)
        finally:
            client.close()
        self.__exit__(None, None, None)
        raise RuntimeError(f"tritonserver was not ready after {self.startup_s:.0f} s: {self.tail()}")

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __exit__(self, *exc) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def load_test(model_dir, url: str, samples, clients: int, requests: int, pad_tokens: int = 0, pad_frames: int = 0,
              name: str = "mmim", expected: dict[str, np.ndarray] | None = None) -> dict:
    """`clients` threads, each with its own connection, send `requests` one-clip requests.

    With `expected` (every output for `samples`, e.g. from OnnxModel.predict), each response
    is compared with its row: `max_difference` is the largest |Triton - expected|, per output,
    over requests that Triton may have padded and merged with others."""
    latencies: list[float] = []
    differences: dict[str, float] = {}
    failures: list[str] = []
    lock = threading.Lock()
    # The HTTP client is bound to the thread that made it (gevent): one per thread, plus this one.
    main = TritonModel(model_dir, url, name, pad_tokens, pad_frames)
    # Tokenise before the clock starts: the load is on the server.
    feeds = [main.collate([s]) for s in samples]
    before = main.statistics()
    ready = threading.Barrier(clients + 1)

    def client(k: int) -> None:
        model = TritonModel(model_dir, url, name)
        ready.wait()
        for r in range(requests):
            index = (k * requests + r) % len(feeds)
            start = time.perf_counter()
            try:
                got = apply_trust(model.run(feeds[index]))  # as predict serves it
            except Exception as error:
                with lock:
                    failures.append(str(error))
                continue
            with lock:
                latencies.append(time.perf_counter() - start)
                for key, want in (expected or {}).items():
                    gap = float(np.abs(got[key][0] - want[index]))
                    differences[key] = max(differences.get(key, 0.0), gap)
        model.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    ready.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    after = main.statistics()
    main.close()
    executions = after["execution_count"] - before["execution_count"]
    inferences = after["inference_count"] - before["inference_count"]
    ms = np.array(latencies) * 1000
    return {
        "clients": clients, "requests": clients * requests, "ok": len(latencies), "failures": len(failures),
        "first_failure": failures[0] if failures else "",
        "requests_per_s": len(latencies) / wall, "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
        "p95_ms": float(np.percentile(ms, 95)) if len(ms) else None,
        "executions": executions, "mean_requests_per_execution": inferences / max(1, executions),
        "padded": bool(pad_tokens or pad_frames),
        "max_difference": differences,
    }


def main(argv: list[str] | None = None) -> None:
    from model.cli import emit_json

    from export.runtime import OnnxModel

    parser = argparse.ArgumentParser(prog="python -m export.triton.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="an exported model folder, e.g. weights/mmim-clip")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--pad-frames", type=int, default=60, help="frame count of the padded run")
    parser.add_argument("--data-dir", default="", help="MOSI folder (default: the shared data folder's mosi/)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    samples = serving_samples(args.model_dir, 64, args.data_dir)
    reference = OnnxModel(args.model_dir, providers=["CPUExecutionProvider"], threads=1)
    with tempfile.TemporaryDirectory() as repo:
        write_triton_repository(args.model_dir, repo, backend="python")
        with TritonServer(repo) as server:
            served = TritonModel(args.model_dir, server.url)
            want, got = reference.predict(samples, 16), served.predict(samples, 16)
            parity = max(float(np.max(np.abs(want[k] - got[k]))) for k in want)
            runs = {
                "ragged": load_test(args.model_dir, server.url, samples, args.clients, args.requests, expected=want),
                "padded": load_test(args.model_dir, server.url, samples, args.clients, args.requests,
                                    pad_tokens=reference.config["max_text_len"], pad_frames=args.pad_frames),
            }
    emit_json({"model": str(args.model_dir), "backend": "python (ONNX Runtime CPU, 1 thread)",
               "max_abs_difference_vs_ort": parity, "load": runs}, args.out)


if __name__ == "__main__":
    main()
