"""Process-group set-up for data-parallel training under ``torchrun`` or ``accelerate launch``.

Both launchers export ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init_distributed` reads them and joins the group (NCCL on GPUs, gloo on CPUs or where processes share a
GPU). Without them
it is a single process. No launcher of our own: the standard ones already do this well.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: ``rank`` of ``world`` processes, on ``device``."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum of ``t`` over all processes (``t`` itself in a single process)."""
        if self.distributed:
            t = t.clone()
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Run the block on rank 0 first, then on the others (which then find its cached results:
        the data split, the code table, a converted backbone)."""
        if not self.is_main:
            self.barrier()
        try:
            yield
        finally:
            if self.is_main:
                self.barrier()

    @contextlib.contextmanager
    def main_first_until(self, ready: Callable[[], bool], poll_s: float = 2.0, store: Any = None) -> Iterator[None]:
        """:meth:`main_first` for a block that may outlast the process group's timeout (training a model on rank 0):
        the other ranks wait by polling ``ready()`` (a check of what rank 0 writes to disk) instead of inside a
        barrier, which would end the run after :func:`init_distributed`'s timeout; then all meet in a barrier as
        :meth:`main_first` does, and the others run the block (finding rank 0's result).

        If the block fails on rank 0, rank 0 raises its own error at once (no barrier) and says so in the process
        group's key-value store (``store``; default the group's own), where the polling ranks find it and stop
        too; a store that can no longer be reached (rank 0 gone) stops them as well."""
        if not self.distributed:
            yield
            return
        key = f"agrec/main_first_until/{next(_CALLS)}"  # every rank makes the same calls in the same order
        store = store if store is not None else _group_store()
        if self.is_main:
            try:
                yield
            except BaseException:
                if store is not None:
                    store.set(key, "failed")
                raise
            self.barrier()
            return
        while not ready():
            if store is not None:
                try:
                    failed = store.check([key])
                except Exception as e:  # noqa: BLE001 - any failure to reach rank 0's store means rank 0 is gone
                    raise RuntimeError(f"rank {self.rank}: rank 0 is gone while it ran its block first ({e})") from None
                if failed:
                    raise RuntimeError(f"rank {self.rank}: rank 0 failed in the block it runs first (see its error)")
            time.sleep(poll_s)
        self.barrier()
        yield


_CALLS = itertools.count()


def _group_store() -> Any:
    """The default process group's key-value store (hosted by rank 0), or None without one."""
    if not dist.is_initialized():
        return None
    try:
        return dist.distributed_c10d._get_default_store()
    except (AttributeError, RuntimeError, ValueError):
        return None


def _device(local_rank: int) -> torch.device:
    """``cuda:<local_rank mod the visible GPUs>`` where CUDA is available (so that N processes can share fewer
    GPUs, e.g. two decoding shards on one), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def backend_for(device: torch.device, local_world: int) -> str:
    """NCCL when every process of this node has a GPU of its own; gloo otherwise (CPUs, or more processes than
    GPUs: NCCL refuses two ranks on one device)."""
    if device.type == "cuda" and local_world <= torch.cuda.device_count():
        return "nccl"
    return "gloo"


def init_distributed(timeout_s: int = 1800) -> DistEnv:
    """Join the process group described by the launcher's environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = _device(local_rank)
    if world > 1 and not dist.is_initialized():
        backend = backend_for(device, int(os.environ.get("LOCAL_WORLD_SIZE", world)))
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    if dist.is_initialized():
        world, rank = dist.get_world_size(), dist.get_rank()
    return DistEnv(rank=rank, world=world, local_rank=local_rank, device=device)
