"""ONNX Runtime sessions, made one way for every caller: the served model, the expression
CNN and the benchmarks."""
from __future__ import annotations

import os
from pathlib import Path

def usable_cores() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def make_session(path: Path, providers: list[str] | None = None, threads: int = 0):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # One intra-op thread per usable core; inter-op parallelism only adds contention for this graph.
    options.intra_op_num_threads = threads or usable_cores()
    options.inter_op_num_threads = 1
    wanted = providers or ["CUDAExecutionProvider", "CPUExecutionProvider"]
    # The GPU wheel lists CUDA even where its libraries are missing; ORT then logs
    # an error and falls back to CPU. Silence that: the caller logs what is in use.
    ort.set_default_logger_severity(4)
    try:
        available = set(ort.get_available_providers())
        session = ort.InferenceSession(str(path), options, providers=[p for p in wanted if p in available])
    finally:
        ort.set_default_logger_severity(2)
    return session
