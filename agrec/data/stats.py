"""Dataset statistics in the shape of the paper's Table 1."""

from __future__ import annotations

import numpy as np
import pandas as pd

from agrec.data.dataset import SeqDataset


def dataset_statistics(ds: SeqDataset) -> dict[str, float | int | str]:
    """Users, items, interactions, average sequence length and density (plus length quantiles)."""
    lengths = ds.seq_lengths()
    n_inter = int(lengths.sum())
    return {
        "dataset": ds.name,
        "users": ds.n_users,
        "items": ds.n_items,
        "interactions": n_inter,
        "avg_length": float(lengths.mean()) if len(lengths) else 0.0,
        "density": n_inter / (ds.n_users * ds.n_items) if ds.n_users and ds.n_items else 0.0,
        "min_length": int(lengths.min()) if len(lengths) else 0,
        "median_length": float(np.median(lengths)) if len(lengths) else 0.0,
        "max_length": int(lengths.max()) if len(lengths) else 0,
        "filtered_users": ds.n_filtered_users,
    }


def statistics_table(ds: SeqDataset) -> pd.DataFrame:
    """One-row DataFrame of :func:`dataset_statistics` (Table 1 layout)."""
    return pd.DataFrame([dataset_statistics(ds)])


def head_share(popularity: np.ndarray, head: float = 0.2) -> float:
    """Share of interactions that go to the ``head`` fraction of most popular items."""
    pop = np.sort(popularity)[::-1]
    n_head = max(1, int(round(head * len(pop))))
    return float(pop[:n_head].sum() / pop.sum()) if pop.sum() else 0.0
