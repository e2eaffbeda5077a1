"""Sharded decoding: which evaluated users a process decodes, and how rank 0 gets every shard back.

Under ``torchrun --nproc_per_node N -m agrec.decode.run`` every process runs the decode stage on its own
shard of the evaluated users; rank 0 gathers each row's rankings, writes the stage's files and the record.

Shards are chosen so that the result is bit for bit the one of a single process: :func:`generate_items`
sorts a call's users by prompt length (longest first) and cuts the sorted list into batches of
``decode.batch_size``; a user's beams depend on the batch it shares (padding length, the batch's FSM), so
a shard is a contiguous range of **those same batches** (:func:`shard_positions`), not of user ids. The
scorers' top-k lists are computed the same way: each process scores a contiguous range of the single
process's user blocks (:func:`shard_blocks`) and every process receives all of them (``[U, k]``, small).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.distributed as dist

from agrec.decode.beam import length_order
from agrec.lm.distributed import DistEnv

SINGLE = DistEnv()


def shard_positions(prompts: Sequence[Sequence[int]], batch_size: int, rank: int, world: int) -> np.ndarray:
    """Positions (into ``prompts``) decoded by process ``rank`` of ``world``, in batching order.

    The single process's batches (``batch_size`` users of :func:`length_order`) are split into ``world``
    contiguous ranges of whole batches; passing a shard's prompts in the returned order to ``generate_items``
    reproduces exactly those batches (the stable sort keeps the order, every shard starts on a batch boundary).
    Returns int64 ``[U_rank]`` (empty when there are fewer batches than processes).
    """
    order = length_order(prompts)
    n_batches = -(-len(order) // batch_size)
    lo, hi = rank * n_batches // world, (rank + 1) * n_batches // world
    return np.asarray(order[lo * batch_size : hi * batch_size], dtype=np.int64)


def shard_blocks(n: int, block: int, rank: int, world: int) -> range:
    """Starts of the ``block``-sized blocks of ``range(n)`` that process ``rank`` computes (contiguous)."""
    n_blocks = -(-n // block)
    lo, hi = rank * n_blocks // world, (rank + 1) * n_blocks // world
    return range(lo * block, hi * block, block)


def all_gather_objects(env: DistEnv, obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, …]`` on every process (``[obj]`` in a single process)."""
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(env: DistEnv, obj: Any) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not env.distributed:
        return obj
    box = [obj if env.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_rows(
    env: DistEnv, positions: np.ndarray, items: torch.Tensor, scores: torch.Tensor, n: int
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Rank 0 reassembles every process's rows: ``items [n, K]``, ``scores [n, K]`` in position order.

    Args:
        positions: ``[U_rank]`` where this process's rows go (from :func:`shard_positions`).
        items: ``[U_rank, K]`` this process's ranked items.
        scores: ``[U_rank, K]`` their scores.
        n: rows in all.
    Returns:
        the full ``(items, scores)`` on rank 0, None on the others.
    """
    if not env.distributed:
        if len(positions) == n and np.array_equal(positions, np.arange(n)):
            return items, scores
        parts: list[Any] = [(positions, items, scores)]
    else:
        gathered: list[Any] | None = [None] * env.world if env.is_main else None
        dist.gather_object((positions, items.cpu(), scores.cpu()), gathered, dst=0)
        if not env.is_main or gathered is None:
            return None
        parts = gathered
    out_items = torch.full((n, items.shape[1]), -1, dtype=items.dtype)
    out_scores = torch.full((n, scores.shape[1]), float("-inf"), dtype=scores.dtype)
    for pos, it, sc in parts:
        idx = torch.as_tensor(pos, dtype=torch.long)
        out_items[idx], out_scores[idx] = it, sc
    return out_items, out_scores
