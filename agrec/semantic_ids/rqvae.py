"""RQ-VAE (Lee et al. 2022, as used for semantic IDs by TIGER, LC-Rec and AGRec).

An MLP encoder maps an item's text embedding to a ``code_dim`` latent, a residual quantiser turns the
latent into ``n_levels`` codes, and an MLP decoder reconstructs the embedding from the quantised latent.
Loss = MSE reconstruction + mean over levels of (codebook + β · commitment); the quantiser's
straight-through estimator carries the reconstruction gradient to the encoder.

Inputs are centred and scaled to unit average variance per dimension (one scale for all dimensions,
so the embedding's geometry — which directions vary most — is kept; mean and scale are buffers in the
checkpoint). Unit-norm sentence embeddings have a per-dimension variance of about 1/D, so without it
the reconstruction error (~1e-3) is dwarfed by the commitment term and the encoder collapses every
latent onto one codeword (measured on MovieLens-100k: one code in use after 25 epochs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from agrec.semantic_ids.config import RQVAEConfig
from agrec.semantic_ids.quantize import ResidualQuantizer


def auto_hidden_dims(in_dim: int, code_dim: int) -> list[int]:
    """LC-Rec's widths rule: halve from ``in_dim / 2`` while the width stays above ``code_dim``.

    ``auto_hidden_dims(4096, 32) == [2048, 1024, 512, 256, 128, 64]``; ``auto_hidden_dims(384, 32) == [192, 96, 48]``.
    """
    dims, w = [], in_dim // 2
    while w > code_dim:
        dims.append(w)
        w //= 2
    return dims


def mlp(widths: list[int], dropout: float = 0.0) -> nn.Sequential:
    """Linear layers ``widths[0] -> … -> widths[-1]`` with ReLU (and dropout) between them, none after the last."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class RQVAE(nn.Module):
    """Residual-quantised auto-encoder over item embeddings ``[B, in_dim]``, computed in
    ``cfg.dtype`` (parameters and buffers; inputs are cast to it)."""

    x_mean: torch.Tensor  # buffers (register_buffer), declared for the type checker
    x_std: torch.Tensor

    def __init__(self, in_dim: int, cfg: RQVAEConfig):
        super().__init__()
        self.in_dim, self.cfg = in_dim, cfg
        hidden = list(cfg.hidden_dims) if cfg.hidden_dims is not None else auto_hidden_dims(in_dim, cfg.code_dim)
        self.hidden_dims = hidden
        self.encoder = mlp([in_dim, *hidden, cfg.code_dim], cfg.dropout)
        self.quantizer = ResidualQuantizer(
            cfg.n_levels, cfg.codebook_size, cfg.code_dim, cfg.beta, cfg.sinkhorn_epsilon, cfg.sinkhorn_iters
        )
        self.decoder = mlp([cfg.code_dim, *reversed(hidden), in_dim], cfg.dropout)
        self.register_buffer("x_mean", torch.zeros(in_dim))
        self.register_buffer("x_std", torch.ones(in_dim))
        self.to(getattr(torch, cfg.dtype))  # parameters and buffers in the configured precision

    @torch.no_grad()
    def fit_standardizer(self, x: torch.Tensor) -> None:
        """Set the input mean ``[in_dim]`` and the scale (the root mean per-dimension variance, the same
        for every dimension) from the catalogue ``x`` ``[N, in_dim]``."""
        self.x_mean.copy_(x.mean(0))
        self.x_std.fill_(float(x.var(0).mean().sqrt().clamp_min(1e-8)))

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / scale`` in the model's precision (inputs of another dtype are cast)."""
        return (x.to(self.x_mean.dtype) - self.x_mean) / self.x_std

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x`` ``[B, in_dim]`` -> (standardised reconstruction ``[B, in_dim]``, codes ``[B, L]``,
        quantisation loss)."""
        z = self.encoder(self.standardize(x))
        z_q, codes, q_loss = self.quantizer(z)
        return self.decoder(z_q), codes, q_loss

    def calculate_loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"loss", "recon", "quant"}`` on a batch ``[B, in_dim]``; ``loss = recon + quant``, the
        reconstruction error measured in standardised units."""
        x_hat, _, q_loss = self(x)
        recon = F.mse_loss(x_hat, self.standardize(x))
        return {"loss": recon + q_loss, "recon": recon, "quant": q_loss}

    @torch.no_grad()
    def kmeans_init(self, x: torch.Tensor, seed: int) -> None:
        """Initialise every codebook by k-means on the encoder's latents of ``x`` ``[N, in_dim]``."""
        was = self.training
        self.eval()
        self.quantizer.kmeans_init(self.encoder(self.standardize(x)), seed, self.cfg.kmeans_iters)
        self.train(was)

    @torch.no_grad()
    def encode_codes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Codes ``[N, L]``, reconstruction ``[N, in_dim]`` (in input units) and last-level distances
        ``[N, K]`` of ``x``."""
        was = self.training
        self.eval()
        codes, z_q, dist = self.quantizer.quantize(self.encoder(self.standardize(x)))
        x_hat = self.decoder(z_q) * self.x_std + self.x_mean
        self.train(was)
        return codes, x_hat, dist
