"""Run `model.featurize`'s extraction on a Dask cluster.

    python -m model.featurize --clips DIR --labels labels.csv --out DATASET --dask [ADDRESS]

Without ADDRESS: the scheduler named by DASK_SCHEDULER_ADDRESS if set, else a
LocalCluster of `--workers` single-threaded processes bound to 127.0.0.1, with no
dashboard. Each worker builds its FrontEnd once (a WorkerPlugin); results come back to
the driver as they finish, which writes them, so the run resumes like a local one.
On a real cluster the workers need this project importable and the clips readable at
the same paths; they never write.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client, LocalCluster, WorkerPlugin, as_completed

from .worker import extract, init_front_end

log = logging.getLogger(__name__)


class FrontEndPlugin(WorkerPlugin):
    """Each worker process builds its FrontEnd once, before its first clip."""

    name = "mmim-front-end"

    def __init__(self, config: dict):
        self.config = config

    def setup(self, worker) -> None:
        init_front_end(self.config)


@contextmanager
def dask_client(address: str, workers: int) -> Iterator[Client]:
    """A client on `address`; for "local", on DASK_SCHEDULER_ADDRESS if set, else on a new
    LocalCluster that is closed on exit."""
    address = os.environ.get("DASK_SCHEDULER_ADDRESS", "") if address == "local" else address
    if address:
        with Client(address) as client:
            yield client
        return
    with LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def run_on_dask(jobs: list[dict], front_end_config: dict, address: str, workers: int) -> Iterator[dict]:
    """extract(job) for every job, yielded as each finishes."""
    with dask_client(address, workers) as client:
        log.info("Dask scheduler %s, %d workers", client.scheduler.address, len(client.scheduler_info()["workers"]))
        client.register_plugin(FrontEndPlugin(front_end_config))
        futures = client.map(extract, jobs, pure=False)
        for future in as_completed(futures):
            yield future.result()
            future.release()
