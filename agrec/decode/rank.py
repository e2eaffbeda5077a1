"""GNN-only ranking ("w/o Seq" in the paper's ablations) and the GNN top-n that feeds the rankable FSM.

Both take full-sort scores ``R(u, v)`` of a batch of users over all items and exclude each user's own history
the same way the decoder does (DESIGN §4.6), so an ablation row compares like with like.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from agrec.decode.beam import DecodeResult
from agrec.errors import AgrecError


def rank_by_scores(scores: torch.Tensor | np.ndarray, k: int,
                   exclude: Sequence[np.ndarray | Sequence[int] | None] | None = None) -> DecodeResult:
    """Top-``k`` items by score, best first, with each user's ``exclude`` items removed.

    Args:
        scores: ``[U, n_items]`` full-sort scores (e.g. LightGCN ``<phi(u), psi(v)>``).
        k: number of items to return per user.
        exclude: per user, item ids never to return (the history), or None.
    Returns:
        :class:`DecodeResult` with ``items [U, k]`` (-1 where fewer than k items remain) and their
        ``scores [U, k]`` (-inf there). Ties go to the lower item id (a stable sort), so ranking is deterministic.
    """
    s = torch.as_tensor(scores).detach().float().cpu().clone()
    if s.ndim != 2:
        raise AgrecError(f"scores must be [n_users, n_items], got shape {tuple(s.shape)}")
    if k < 1:
        raise AgrecError(f"k must be >= 1, got {k}")
    U, n_items = s.shape
    if torch.isnan(s).any():
        u = int(torch.isnan(s).any(1).nonzero()[0])
        raise AgrecError(f"scores of user row {u} contain NaN")
    if exclude is not None:
        if len(exclude) != U:
            raise AgrecError(f"exclude has {len(exclude)} entries for {U} score rows")
        for u, ex in enumerate(exclude):
            if ex is None or len(ex) == 0:
                continue
            ex = np.asarray(ex, dtype=np.int64)
            if ex.min() < 0 or ex.max() >= n_items:
                raise AgrecError(f"exclude[{u}] holds item {int(ex[(ex < 0) | (ex >= n_items)][0])}, "
                                 f"not an item id (0..{n_items - 1})")
            s[u, torch.from_numpy(ex)] = float("-inf")
    kk = min(k, n_items)
    top, idx = torch.sort(s, dim=1, descending=True, stable=True)
    top, idx = top[:, :kk], idx[:, :kk]
    items = torch.full((U, k), -1, dtype=torch.int64)
    out = torch.full((U, k), float("-inf"))
    keep = top > float("-inf")
    items[:, :kk] = torch.where(keep, idx, -1)
    out[:, :kk] = top
    return DecodeResult(items=items, scores=out)


def top_n_items(scores: torch.Tensor | np.ndarray, n: int = 10,
                exclude: Sequence[np.ndarray | Sequence[int] | None] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The GNN's top-``n`` items and scores per user (paper: n = 10), history excluded: the ``fsm_inputs`` of
    :func:`agrec.decode.generate_items`. Returns ``(items [U, n], scores [U, n])``; -1 / -inf pad short lists."""
    r = rank_by_scores(scores, n, exclude)
    return r.items, r.scores
