"""torch.distributed for infaug: the process group of a run under ``torchrun``, and the few
collectives the rest of the package uses.

A run started by ``torchrun --nproc_per_node=P`` (which sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``) calls :func:`setup` once; it joins the
default process group with the backend that fits the device (NCCL for CUDA, gloo for the CPU).
Without those variables nothing is initialised and every helper here is the single-process
identity, so a plain ``python``/``infaug run`` behaves exactly as without this module.

Sharding: every rank draws the same global batch order from the run's seed (as a single process
does) and takes every P-th row of each global batch, rows ``rank::P``: the same split as
``torch.utils.data.DistributedSampler`` makes of a shared permutation, but from the run's own batch
order, so that a batch means the same samples at any world size and a run can resume on another
number of processes. Randomness that differs per rank (augmentations, E's noise) comes from seeds
derived from the run's seed and the rank.

Example (one process: the identity):
    >>> import torch
    >>> from infaug import distributed
    >>> distributed.world_size(), distributed.rank(), distributed.is_main()
    (1, 0, True)
    >>> distributed.shard(torch.arange(5))
    tensor([0, 1, 2, 3, 4])
    >>> distributed.all_reduce_sum(torch.ones(2))
    tensor([1., 1.])
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as dist
from torch import Tensor

from infaug.util.seeds import derive
from infaug.util.seeds import rng as seeded

__all__ = [
    "agree", "all_gather_objects", "all_reduce_sum", "backend_for", "barrier", "cleanup",
    "data_parallel", "is_distributed", "is_main", "launched_by_torchrun", "rank", "rank_rng", "rank_states", "restore_rank_rng", "sync_buffers",
    "setup", "shard", "shard_sizes", "world_size",
]


def launched_by_torchrun() -> bool:
    """Whether the environment of a torchrun worker is set (WORLD_SIZE and RANK)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def is_distributed() -> bool:
    """Whether a default process group with more than one rank is up."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Rank 0 (or the only process): the one that writes files."""
    return rank() == 0


def backend_for(device: torch.device) -> str:
    """NCCL for CUDA devices, gloo otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def setup(device: str | torch.device = "cpu", timeout_s: float = 1800.0) -> torch.device:
    """Joins torchrun's process group when launched by it (once; later calls only return the
    device) and returns this rank's device: for CUDA ``cuda:LOCAL_RANK``, else ``device``."""
    device = torch.device(device)
    if not launched_by_torchrun():
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend_for(device), timeout=timedelta(seconds=timeout_s), **kwargs)
    return device


def cleanup() -> None:
    """Leaves the process group. All ranks meet at a barrier first: a gloo rank that tears its
    connections down while another still reads from them can abort that one at exit."""
    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def _collective_device() -> torch.device:
    """Where the backend's collectives take their tensors: this rank's GPU for NCCL, else the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """The sum of ``tensor`` over all ranks, in place and returned; the identity in a single
    process. A tensor on another device than the backend's (a CPU scalar under NCCL) is reduced
    through a copy there."""
    if is_distributed():
        device = _collective_device()
        moved = tensor if tensor.device == device else tensor.to(device)
        dist.all_reduce(moved, op=dist.ReduceOp.SUM)
        if moved is not tensor:
            tensor.copy_(moved)
    return tensor


def all_gather_objects(value) -> list:
    """[value of rank 0, value of rank 1, ...] on every rank (picklable values)."""
    if not is_distributed():
        return [value]
    out = [None] * world_size()
    dist.all_gather_object(out, value)
    return out


def shard(rows: Tensor, index: Optional[int] = None, count: Optional[int] = None) -> Tensor:
    """This rank's part of a global batch of ``rows``: every ``count``-th from ``index``
    (default: this rank of the world)."""
    index = rank() if index is None else index
    count = world_size() if count is None else count
    return rows[index::count]


def shard_sizes(total: int, count: Optional[int] = None) -> list[int]:
    """How many of ``total`` rows each rank gets from :func:`shard`."""
    count = world_size() if count is None else count
    return [len(range(r, total, count)) for r in range(count)]


def agree(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (so that a decision taken from a clock, such as whether a
    checkpoint is due, is the same everywhere)."""
    if not is_distributed():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=_collective_device())
    dist.broadcast(value, src=0)
    return bool(value.item())


def rank_rng(seed: int, part: str, shared: torch.Generator) -> torch.Generator:
    """The generator this rank draws its own random values of ``part`` from (augmentations, E's
    noise, G's batches): ``shared`` itself in a single process, so that one process draws exactly
    what it drew before; on P > 1 ranks a stream derived from the run's seed, ``part`` and the rank."""
    if not is_distributed():
        return shared
    return seeded(seed, f"{part}/rank {rank()} of {world_size()}")


def data_parallel(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` in DistributedDataParallel on P > 1 ranks (gradients averaged over the ranks in
    backward; CUDA models' BatchNorm layers become SyncBatchNorm, CPU ones keep per-rank batch
    statistics, which gloo cannot synchronise); ``module`` itself in one process."""
    if not is_distributed():
        return module
    from torch.nn.parallel import DistributedDataParallel

    device = next(module.parameters()).device
    if device.type == "cuda":
        module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
        return DistributedDataParallel(module, device_ids=[device])
    return DistributedDataParallel(module)


def rank_states(generator: torch.Generator) -> Optional[list]:
    """[state of ``generator`` on rank 0, on rank 1, ...] (gathered, for rank 0's checkpoint) on
    P > 1 ranks; None in one process, where the checkpoint's own RNG states cover it."""
    if not is_distributed():
        return None
    return all_gather_objects(generator.get_state())


def restore_rank_rng(states: Optional[list], generator: torch.Generator, seed: int, part: str, position: str) -> None:
    """After a checkpoint's states were set: this rank's own state when the checkpoint was saved
    by as many ranks as there are now; on another number of ranks P > 1, a fresh stream derived
    from the run's seed, ``part``, the rank and ``position`` (where the run resumed), so that a
    resumed run is deterministic at any world size. One process: nothing (the checkpoint's state
    of the shared stream is already set)."""
    if not is_distributed():
        return
    if states is not None and len(states) == world_size():
        generator.set_state(states[rank()])
        return
    generator.manual_seed(derive(seed, f"{part}/rank {rank()} of {world_size()}/resumed at {position}"))


def sync_buffers(module: torch.nn.Module) -> None:
    """Rank 0's buffers (BatchNorm's running statistics) on every rank. After training steps in
    which each rank normalised its own shard, this makes evaluation, features and checkpoints the
    same on all ranks. One process: nothing."""
    if not is_distributed():
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=0)
