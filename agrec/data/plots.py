"""Figures of the data stage: sequence lengths and item popularity (long tail)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def seq_length_histogram(lengths: np.ndarray, dataset: str = "", bins: int = 50) -> Figure:
    """Histogram of per-user sequence lengths ``[n_users]`` on a log-spaced axis."""
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    lo, hi = max(1, int(lengths.min())), int(lengths.max())
    edges = np.unique(np.geomspace(lo, hi + 1, bins).astype(int)) if hi > lo else np.array([lo, lo + 1])
    ax.hist(lengths, bins=edges.tolist(), color="#4C72B0", edgecolor="white")
    ax.set_xscale("log")
    ax.set_xlabel("interactions per user")
    ax.set_ylabel("users")
    ax.axvline(float(np.median(lengths)), color="#C44E52", ls="--", label=f"median {np.median(lengths):g}")
    ax.legend(frameon=False)
    ax.set_title(f"{dataset}: sequence lengths ({len(lengths)} users)")
    return fig


def popularity_long_tail(popularity: np.ndarray, dataset: str = "", head_share: float = 0.2) -> Figure:
    """Items sorted by interaction count ``[n_items]`` (log scale), with the head's share marked.

    The left panel is the rank/count curve; the right one is the cumulative share of interactions
    covered by the top-x% items.
    """
    pop = np.sort(popularity)[::-1]
    total = pop.sum()
    cum = np.cumsum(pop) / total if total else np.zeros_like(pop, dtype=float)
    n_head = max(1, int(round(head_share * len(pop))))
    fig = Figure(figsize=(10, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    ranks = np.arange(1, len(pop) + 1)
    ax1.plot(ranks, np.maximum(pop, 0.5), color="#4C72B0")
    ax1.set_yscale("log")
    ax1.set_xlabel("item rank by popularity")
    ax1.set_ylabel("interactions")
    ax1.axvline(n_head, color="#C44E52", ls="--", label=f"top {head_share:.0%} = {n_head} items")
    ax1.legend(frameon=False)
    ax1.set_title(f"{dataset}: item popularity")
    ax2.plot(ranks / len(pop), cum, color="#55A868")
    ax2.axvline(head_share, color="#C44E52", ls="--")
    ax2.axhline(cum[n_head - 1], color="#C44E52", ls=":", label=f"{cum[n_head - 1]:.0%} of interactions")
    ax2.set_xlabel("fraction of items (most popular first)")
    ax2.set_ylabel("cumulative share of interactions")
    ax2.legend(frameon=False, loc="lower right")
    return fig
