"""Data-parallel training over several processes (torchrun), on CPUs (gloo) or GPUs (nccl).

    torchrun --standalone --nproc_per_node 2 -m model.train --benchmark mosi-std ...

Every process holds the whole model and trains on its own shard of each epoch
(DistributedSampler, reshuffled per epoch with set_epoch). Gradients are averaged
across processes before every optimizer step, so all replicas take the same step and
stay equal; rank 0 alone writes checkpoints and logs, and decides model selection.

Why gradients are averaged here rather than by the DistributedDataParallel wrapper:
DDP's reducer assumes one backward pass per forward pass, with every loss computed
inside the wrapped forward. MMIM's step runs two backward passes over one forward
(the likelihood stage reaches only the q networks; the main stage reaches everything,
q included, through MI terms computed outside the forward), which makes DDP's reducer
mark parameters ready twice and fail. The arithmetic is DDP's (the mean of the
per-process gradients, in one flat all-reduce per stage); what is given up is DDP's
overlap of communication with the backward pass, which matters little at MMIM's size.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger("mmim.distributed")


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str) -> tuple[Context, str]:
    """The process group torchrun describes in the environment (none for a plain run), and
    the device this process trains on: with CUDA, the GPU of its local rank."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Context(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda")
    if cuda:
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Context(rank, world_size, local_rank), device


def teardown(ctx: Context) -> None:
    if ctx.enabled and dist.is_initialized():
        # Without a barrier first, about 1 run in 20 aborted (SIGABRT) in gloo's teardown.
        dist.barrier()
        dist.destroy_process_group()


def barrier(ctx: Context) -> None:
    if ctx.enabled:
        dist.barrier()


def broadcast_state(ctx: Context, module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers, everywhere."""
    if ctx.enabled:
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def broadcast_object(ctx: Context, value):
    """Rank 0's `value` (any picklable object), everywhere."""
    if not ctx.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def average_gradients(ctx: Context, params: list[torch.nn.Parameter]) -> None:
    """Replace every gradient by its mean over the processes.

    A parameter may get a gradient on some processes and none on others (a term that
    needs rows a shard lacks): it gets the mean with zeros for the missing ones, on every
    process, so that every optimizer takes the same step."""
    if not ctx.enabled or not params:
        return
    ref = params[0]
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    has_grad = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=ref.device)
    dist.all_reduce(flat)
    dist.all_reduce(has_grad, op=dist.ReduceOp.MAX)
    flat /= ctx.world_size
    offset = 0
    for p, used in zip(params, has_grad.tolist()):
        n = p.numel()
        if used:
            p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def shard(ctx: Context, n: int, seed: int, epoch: int) -> list[int]:
    """This process's indices of a dataset of n for `epoch` (a DistributedSampler: shuffled
    by (seed, epoch), padded by repetition so that every process gets as many)."""
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(range(n), num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    return list(sampler)


def mean_over_ranks(ctx: Context, values: dict[str, float]) -> dict[str, float]:
    """Per key, the mean over the processes that logged it."""
    if not ctx.enabled:
        return values
    gathered: list[dict[str, float]] = [None] * ctx.world_size
    dist.all_gather_object(gathered, values)
    keys = sorted({k for g in gathered for k in g})
    return {k: sum(g[k] for g in gathered if k in g) / sum(k in g for g in gathered) for k in keys}


@torch.no_grad()
def max_parameter_difference(ctx: Context, module: torch.nn.Module) -> float:
    """The largest |difference| between any process's parameters and rank 0's: 0 when in sync."""
    if not ctx.enabled:
        return 0.0
    worst = torch.zeros((), device=next(module.parameters()).device)
    for p in module.parameters():
        reference = p.detach().clone()
        dist.broadcast(reference, src=0)
        worst = torch.maximum(worst, (p - reference).abs().max())
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    return float(worst)
