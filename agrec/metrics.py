"""Top-K metrics with one relevant item per user: HR@K and NDCG@K.

A user whose ranked list has fewer than K items (e.g. a beam search that found fewer valid items)
is scored on what it has: the target beyond the list's end is a miss. Every evaluated user counts
in the average; nobody is skipped.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


def target_ranks(rankings: Sequence[Sequence[int]] | np.ndarray, targets: Sequence[int] | np.ndarray) -> np.ndarray:
    """1-based rank of each user's target in their ranked list, 0 when absent.

    Args:
        rankings: per user, item ids best first; a ragged list, or an int array ``[n_users, L]``
            in which negative entries are padding.
        targets: the relevant item per user, shape ``[n_users]``.

    Returns:
        int64 array ``[n_users]``.
    """
    targets = np.asarray(targets)
    if len(rankings) != len(targets):
        raise ValueError(f"{len(rankings)} rankings for {len(targets)} targets")
    ranks = np.zeros(len(targets), dtype=np.int64)
    if isinstance(rankings, np.ndarray) and rankings.ndim == 2:
        hit = (rankings == targets[:, None]) & (rankings >= 0)
        any_hit = hit.any(axis=1)
        ranks[any_hit] = hit[any_hit].argmax(axis=1) + 1
        return ranks
    for u, (row, t) in enumerate(zip(rankings, targets, strict=True)):
        for pos, item in enumerate(row):
            if item == t:
                ranks[u] = pos + 1
                break
    return ranks


def hit_rate_at_k(ranks: np.ndarray, k: int) -> float:
    """Fraction of users whose target is in the top ``k``. ``ranks`` from :func:`target_ranks`."""
    ranks = np.asarray(ranks)
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if len(ranks) == 0:
        raise ValueError("no users to evaluate")
    return float(((ranks >= 1) & (ranks <= k)).mean())


def ndcg_at_k(ranks: np.ndarray, k: int) -> float:
    """Mean of 1/log2(rank + 1) over users with rank <= k (0 for the others).

    With one relevant item the ideal DCG is 1, so this is already normalised.
    """
    ranks = np.asarray(ranks)
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if len(ranks) == 0:
        raise ValueError("no users to evaluate")
    hit = (ranks >= 1) & (ranks <= k)
    gains = np.zeros(len(ranks), dtype=np.float64)
    gains[hit] = 1.0 / np.log2(ranks[hit] + 1.0)
    return float(gains.mean())


def evaluate_rankings(
    rankings: Sequence[Sequence[int]] | np.ndarray, targets: Sequence[int] | np.ndarray, ks: Iterable[int] = (5, 10)
) -> dict[str, float]:
    """``{"HR@5": …, "NDCG@5": …, "HR@10": …, "NDCG@10": …}`` averaged over all users."""
    ranks = target_ranks(rankings, targets)
    out: dict[str, float] = {}
    for k in ks:
        out[f"HR@{k}"] = hit_rate_at_k(ranks, k)
        out[f"NDCG@{k}"] = ndcg_at_k(ranks, k)
    return out
