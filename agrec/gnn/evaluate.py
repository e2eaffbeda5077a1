"""Full-ranking evaluation of a GNN on the validation or test item (docs/design.md §4.6).

Every item is ranked; the user's own history is excluded (RecBole's full-sort protocol): for the
validation item, the training items; for the test item, the training items plus the validation
item. One relevant item per user; HR@K and NDCG@K from :mod:`agrec.metrics`.
"""

from __future__ import annotations

import numpy as np
import torch

from agrec.data.split import LeaveOneOutSplit
from agrec.gnn.base import GraphRecommender
from agrec.metrics import evaluate_rankings


def history_exclusion(split: LeaveOneOutSplit, target: str) -> list[np.ndarray]:
    """Per user, the items to mask when ranking for ``target`` (``"valid"`` or ``"test"``)."""
    return [split.history(u, target) for u in range(split.n_users)]


@torch.no_grad()
def rank_all_users(
    model: GraphRecommender, exclude: list[np.ndarray] | None, k: int, batch_users: int = 4096
) -> np.ndarray:
    """Top-``k`` items of every user, ``[n_users, k]`` (int64, -1 = padding), in user batches."""
    out = []
    for start in range(0, model.n_users, batch_users):
        ids = torch.arange(start, min(start + batch_users, model.n_users), device=model.device)
        ex = None if exclude is None else exclude[start : start + len(ids)]
        items, _ = model.top_n(ids, k, exclude=ex)
        out.append(items.cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)


def evaluate_gnn(
    model: GraphRecommender,
    split: LeaveOneOutSplit,
    target: str,
    ks: tuple[int, ...] = (5, 10),
    exclude_history: bool = True,
) -> dict[str, float]:
    """``{"HR@5": …, "NDCG@5": …, "HR@10": …, "NDCG@10": …}`` for ``target`` in ``"valid"``/``"test"``.

    ``exclude_history=False`` keeps the history items in the ranking (data with repeat consumption).
    """
    was_training = model.training
    model.eval()
    try:
        exclude = history_exclusion(split, target) if exclude_history else None
        rankings = rank_all_users(model, exclude, max(ks))
        return evaluate_rankings(rankings, split.targets(target), ks)
    finally:
        model.train(was_training)
