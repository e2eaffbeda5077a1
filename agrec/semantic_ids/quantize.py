"""Residual vector quantisation: codebooks, k-means initialisation, Sinkhorn-balanced assignment.

Level ``l`` quantises the residual left by levels ``0..l-1``: ``r_0 = z``, ``c_l = argmin_k ||r_l - e_{l,k}||``,
``r_{l+1} = r_l - e_{l,c_l}``, and ``z_q = Σ_l e_{l,c_l}`` (Lee et al. 2022; TIGER; LC-Rec). Training uses the
VQ-VAE losses per level, ``||sg(r_l) - e||² + β ||r_l - sg(e)||²``, and the straight-through estimator
``z + sg(z_q - z)`` so the encoder receives the decoder's gradient.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def sinkhorn_assign(dist: torch.Tensor, epsilon: float, n_iters: int = 50) -> torch.Tensor:
    """Balanced assignment of ``B`` vectors to ``K`` codes from squared distances ``[B, K]``; returns ``[B]``.

    Solves the entropic optimal-transport problem with uniform marginals (each code gets about ``B/K``
    vectors) in the log domain, then takes each row's argmax. Distances are first mapped to [-1, 1] (as
    LC-Rec does) so that ``epsilon`` does not depend on their scale; the log domain keeps small
    epsilons such as LC-Rec's 0.003 finite.
    """
    d = dist.detach().double()
    lo, hi = d.min(), d.max()
    d = (d - (hi + lo) / 2) / ((hi - lo) / 2 + 1e-12)
    log_p = -d / epsilon
    b, k = log_p.shape
    for _ in range(n_iters):
        log_p = log_p - torch.logsumexp(log_p, dim=0, keepdim=True) - math.log(k)  # columns sum to 1/K
        log_p = log_p - torch.logsumexp(log_p, dim=1, keepdim=True) - math.log(b)  # rows sum to 1/B
    return log_p.argmax(dim=1)


def kmeans_centroids(x: np.ndarray, k: int, seed: int, max_iter: int = 100) -> np.ndarray:
    """``k`` centroids ``[k, d]`` of ``x`` ``[n, d]`` by k-means++ and Lloyd (scikit-learn).

    When ``x`` has fewer than ``k`` distinct rows, the remaining codewords are copies of random rows
    plus small noise: they exist (the codebook has a fixed size) but rarely win an assignment.
    """
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    x = np.asarray(x, dtype=np.float64)
    n_distinct = len(np.unique(x.round(decimals=8), axis=0))
    k_fit = max(1, min(k, n_distinct))
    # One OpenMP thread: scikit-learn's k-means adds per-thread partial sums in completion order, so
    # with several threads its centroids can change from run to run; this problem is tiny anyway.
    with threadpool_limits(1):
        km = KMeans(n_clusters=k_fit, n_init=1, max_iter=max_iter, random_state=seed).fit(x)
    cent = km.cluster_centers_
    if k_fit < k:
        rng = np.random.default_rng(seed)
        extra = x[rng.integers(0, len(x), size=k - k_fit)]
        scale = float(x.std()) or 1.0
        cent = np.concatenate([cent, extra + rng.normal(0, 1e-3 * scale, size=extra.shape)])
    return cent


class VectorQuantizer(nn.Module):
    """One codebook ``[codebook_size, dim]``."""

    def __init__(
        self, codebook_size: int, dim: int, beta: float = 0.25, sinkhorn_epsilon: float = 0.0, sinkhorn_iters: int = 50
    ):
        super().__init__()
        if codebook_size < 1 or dim < 1:
            raise ValueError(f"codebook_size and dim must be >= 1, got {codebook_size}, {dim}")
        self.codebook_size, self.dim, self.beta = codebook_size, dim, beta
        self.sinkhorn_epsilon, self.sinkhorn_iters = sinkhorn_epsilon, sinkhorn_iters
        self.codebook = nn.Parameter(torch.empty(codebook_size, dim).uniform_(-1 / codebook_size, 1 / codebook_size))

    def distances(self, r: torch.Tensor) -> torch.Tensor:
        """Squared L2 distances ``[B, K]`` from residuals ``r`` ``[B, dim]`` to every codeword."""
        e = self.codebook
        return (r.pow(2).sum(1, keepdim=True) - 2 * r @ e.t() + e.pow(2).sum(1)[None, :]).clamp_min(0.0)

    def assign(self, dist: torch.Tensor) -> torch.Tensor:
        """Codes ``[B]`` from distances ``[B, K]``: nearest codeword, or Sinkhorn-balanced if enabled."""
        if self.sinkhorn_epsilon > 0:
            return sinkhorn_assign(dist, self.sinkhorn_epsilon, self.sinkhorn_iters)
        return dist.argmin(dim=1)

    def forward(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantise ``r`` ``[B, dim]``; returns codewords ``[B, dim]`` (no straight-through here),
        codes ``[B]`` and this level's loss (codebook + β · commitment, a scalar)."""
        codes = self.assign(self.distances(r.detach()))
        q = self.codebook[codes]
        loss = F.mse_loss(q, r.detach()) + self.beta * F.mse_loss(r, q.detach())
        return q, codes, loss


class ResidualQuantizer(nn.Module):
    """``n_levels`` codebooks applied to successive residuals; Sinkhorn (if any) on the last level only."""

    def __init__(
        self,
        n_levels: int,
        codebook_size: int,
        dim: int,
        beta: float = 0.25,
        sinkhorn_epsilon: float = 0.0,
        sinkhorn_iters: int = 50,
    ):
        super().__init__()
        self.levels = nn.ModuleList(
            VectorQuantizer(codebook_size, dim, beta, sinkhorn_epsilon if lvl == n_levels - 1 else 0.0, sinkhorn_iters)
            for lvl in range(n_levels)
        )

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def quantizers(self) -> list[VectorQuantizer]:
        """The levels, typed (``nn.ModuleList`` indexes as a plain ``Module``)."""
        return [cast(VectorQuantizer, vq) for vq in self.levels]

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``z`` ``[B, dim]`` -> (straight-through ``z_q`` ``[B, dim]``, codes ``[B, L]``, mean level loss)."""
        r = z
        z_q = torch.zeros_like(z)
        codes, losses = [], []
        for vq in self.levels:
            q, c, loss = vq(r)
            # The residual passed on is computed from the codeword, not the straight-through value:
            # each codebook sees exactly what the levels above it left unexplained.
            r = r - q.detach()
            z_q = z_q + q
            codes.append(c)
            losses.append(loss)
        z_st = z + (z_q - z).detach()
        return z_st, torch.stack(codes, dim=1), torch.stack(losses).mean()

    @torch.no_grad()
    def kmeans_init(self, z: torch.Tensor, seed: int, max_iter: int = 100) -> None:
        """Set each codebook to the k-means centroids of the residuals its level sees on ``z`` ``[N, dim]``."""
        r = z.detach().to(self.quantizers[0].codebook.dtype)
        for lvl, vq in enumerate(self.quantizers):
            cent = torch.from_numpy(kmeans_centroids(r.cpu().numpy(), vq.codebook_size, seed + lvl, max_iter))
            vq.codebook.data.copy_(cent.to(vq.codebook))
            c = vq.assign(vq.distances(r))
            r = r - vq.codebook[c]

    @torch.no_grad()
    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Codes of ``z`` ``[N, dim]`` without gradients.

        Returns codes ``[N, L]``, the reconstruction ``z_q`` ``[N, dim]`` and the distances of the last
        level's residual to its codewords ``[N, K]`` (used to re-assign duplicates to the nearest free code).
        """
        r = z.detach()
        z_q = torch.zeros_like(r)
        codes = []
        dist = torch.empty(0)
        for vq in self.quantizers:
            dist = vq.distances(r)
            c = vq.assign(dist)
            q = vq.codebook[c]
            r, z_q = r - q, z_q + q
            codes.append(c)
        return torch.stack(codes, dim=1), z_q, dist
