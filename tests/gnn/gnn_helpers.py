"""Small synthetic data for the GNN tests (fast: no MovieLens needed)."""

import numpy as np

from agrec.data.split import LeaveOneOutSplit
from agrec.gnn.graph import InteractionGraph


def random_split(n_users: int = 40, n_items: int = 30, seed: int = 0) -> LeaveOneOutSplit:
    """Each user gets 4..10 distinct items; the last is test, the one before validation."""
    rng = np.random.default_rng(seed)
    seqs = [rng.choice(n_items, size=int(rng.integers(4, 11)), replace=False) for _ in range(n_users)]
    return LeaveOneOutSplit(train=[s[:-2].astype(np.int64) for s in seqs],
                            valid=np.array([s[-2] for s in seqs], dtype=np.int64),
                            test=np.array([s[-1] for s in seqs], dtype=np.int64))


def graph_of(split: LeaveOneOutSplit, n_items: int = 30) -> InteractionGraph:
    return InteractionGraph.from_split(split, n_items)
