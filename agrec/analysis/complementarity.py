"""Which users does the LM alone get right, which the GNN alone, both, neither (paper Fig. 1)?"""

from __future__ import annotations

import numpy as np
import pandas as pd

from agrec.metrics import target_ranks

GROUPS = ("LLM only", "GNN only", "both", "neither")


def hits_at_k(rankings, targets, k: int = 10) -> np.ndarray:
    """bool ``[n_users]``: the target is within the top ``k`` of the user's ranking."""
    ranks = target_ranks(rankings, targets)
    return (ranks >= 1) & (ranks <= k)


def complementarity(hit_lm: np.ndarray, hit_gnn: np.ndarray) -> dict[str, int]:
    """Counts of users per group; the four counts add up to the number of users.

    Args:
        hit_lm, hit_gnn: bool ``[n_users]`` hit indicators of the two recommenders.
    """
    hit_lm = np.asarray(hit_lm, dtype=bool)
    hit_gnn = np.asarray(hit_gnn, dtype=bool)
    if hit_lm.shape != hit_gnn.shape:
        raise ValueError(f"hit arrays differ in shape: {hit_lm.shape} vs {hit_gnn.shape}")
    return {
        "LLM only": int((hit_lm & ~hit_gnn).sum()),
        "GNN only": int((~hit_lm & hit_gnn).sum()),
        "both": int((hit_lm & hit_gnn).sum()),
        "neither": int((~hit_lm & ~hit_gnn).sum()),
    }


def complementarity_by_bucket(hit_lm: np.ndarray, hit_gnn: np.ndarray, values: np.ndarray,
                              edges: list[float], name: str = "bucket") -> pd.DataFrame:
    """Group counts per bucket of a per-user value (history length, target popularity …).

    Buckets are half-open ``[edges[i], edges[i+1])``; a value outside every bucket is an error,
    so no user is silently left out.

    Returns:
        DataFrame with one row per bucket: ``name``, ``users`` and one column per group.
    """
    values = np.asarray(values)
    idx = np.searchsorted(np.asarray(edges), values, side="right") - 1
    outside = (idx < 0) | (idx >= len(edges) - 1)
    if outside.any():
        raise ValueError(f"{int(outside.sum())} value(s) fall outside the bucket edges {edges} "
                         f"(e.g. {values[outside][0]!r})")
    rows = []
    for b in range(len(edges) - 1):
        m = idx == b
        label = f"[{edges[b]:g}, {edges[b + 1]:g})"
        rows.append({name: label, "users": int(m.sum()), **complementarity(hit_lm[m], hit_gnn[m])})
    return pd.DataFrame(rows)


def quantile_edges(values: np.ndarray, n_buckets: int = 4) -> list[float]:
    """Bucket edges at quantiles of ``values``, the last edge just above the maximum."""
    qs = np.quantile(np.asarray(values, dtype=float), np.linspace(0, 1, n_buckets + 1))
    edges = sorted(set(float(np.floor(q)) for q in qs[:-1]))
    return edges + [float(np.max(values)) + 1.0]
