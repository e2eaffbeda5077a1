"""BPR training triples (user, positive item, negative item), one epoch at a time, vectorised.

Negatives are drawn uniformly from the items the user has *not* interacted with in training
(rejection sampling against the graph's sorted edge keys, so memory is O(edges), not
O(users x items)). Validation and test items are ordinary candidates: the sampler never looks at
them, so which item is held out cannot change what is sampled.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import numpy as np
import torch

from agrec.errors import AgrecError
from agrec.gnn.graph import InteractionGraph


class BPRBatch(NamedTuple):
    """One mini-batch, each a LongTensor ``[B]``."""

    users: torch.Tensor
    pos_items: torch.Tensor
    neg_items: torch.Tensor


def sample_negatives(
    graph: InteractionGraph, users: np.ndarray, rng: np.random.Generator, max_rounds: int = 1000
) -> np.ndarray:
    """One uniform negative item per entry of ``users`` that is not among that user's training items.

    Returns:
        int64 array shaped like ``users``.
    """
    users = np.asarray(users, dtype=np.int64)
    full = graph.user_degree()[users] >= graph.n_items
    if full.any():
        u = int(users[full][0])
        raise AgrecError(
            f"user {u} interacted with all {graph.n_items} items in training: no negative item can be sampled for BPR"
        )
    neg = rng.integers(0, graph.n_items, size=users.shape, dtype=np.int64)
    bad = np.flatnonzero(graph.contains(users, neg))
    for _ in range(max_rounds):
        if len(bad) == 0:
            return neg
        neg[bad] = rng.integers(0, graph.n_items, size=len(bad), dtype=np.int64)
        bad = bad[graph.contains(users[bad], neg[bad])]
    raise AgrecError(
        f"negative sampling did not finish in {max_rounds} rounds ({len(bad)} left): "
        f"some users have almost every item in their training history"
    )


def bpr_batches(
    graph: InteractionGraph, batch_size: int, rng: np.random.Generator, device: torch.device | str = "cpu"
) -> Iterator[BPRBatch]:
    """Shuffle every training edge once and yield BPR batches (the last one may be smaller).

    All randomness comes from ``rng``: the same generator state gives the same epoch.
    """
    if batch_size <= 0:
        raise AgrecError(f"batch_size must be positive, got {batch_size}")
    order = rng.permutation(graph.n_edges)
    users, pos = graph.users[order], graph.items[order]
    neg = sample_negatives(graph, users, rng)
    tu, tp, tn = (torch.from_numpy(a).to(device) for a in (users, pos, neg))
    for start in range(0, graph.n_edges, batch_size):
        sl = slice(start, start + batch_size)
        yield BPRBatch(tu[sl], tp[sl], tn[sl])
