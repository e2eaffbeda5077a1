"""Losses shared by the GNNs: BPR, L2 regularisation of the ego embeddings, InfoNCE."""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """Mean of -log σ(pos - neg) over the batch (Rendle et al. 2009), ``[B], [B] -> scalar``.

    softplus(neg - pos) is the same quantity without the overflow of log(sigmoid(·)).
    """
    return F.softplus(neg_scores - pos_scores).mean()


def l2_reg(*embeddings: torch.Tensor) -> torch.Tensor:
    """½ Σ ||E||² / B over the given ``[B, d]`` embeddings (B = rows of the first).

    The LightGCN reference implementation regularises the layer-0 (ego) embeddings of the batch
    this way (He et al. 2020, Eq. 15: λ||E⁽⁰⁾||², scaled per batch).
    """
    batch = embeddings[0].shape[0]
    total = cast(torch.Tensor, sum(e.pow(2).sum() for e in embeddings))  # sum() starts from int 0
    return total / (2.0 * batch)


def info_nce(view1: torch.Tensor, view2: torch.Tensor, tau: float) -> torch.Tensor:
    """InfoNCE between two views ``[B, d]`` of the same B nodes: row b of view1 must pick row b of
    view2 among all B rows (the other nodes of the batch are the negatives). Cosine similarity,
    temperature ``tau``; mean over the batch.
    """
    z1 = F.normalize(view1, dim=1)
    z2 = F.normalize(view2, dim=1)
    logits = z1 @ z2.T / tau
    return F.cross_entropy(logits, torch.arange(len(z1), device=z1.device))
