"""Figures of the gnn stage: training curves and a t-SNE of the item embeddings coloured by genre."""

from __future__ import annotations

from collections import Counter
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD"]


def training_curves(curves: Mapping[str, pd.DataFrame], metric: str = "NDCG@10") -> Figure:
    """Left: mean BPR loss per epoch; right: validation ``metric`` at each evaluation, best marked.

    Args:
        curves: model name -> the ``curves.csv`` table of that model (one row per epoch).
    """
    fig = Figure(figsize=(11, 3.8))
    ax1, ax2 = fig.subplots(1, 2)
    for k, (name, df) in enumerate(curves.items()):
        color = PALETTE[k % len(PALETTE)]
        ax1.plot(df["epoch"], df["bpr"], color=color, label=f"{name} (BPR)")
        if "cl" in df.columns:
            ax1.plot(df["epoch"], df["loss"], color=color, ls=":", label=f"{name} (total)")
        col = f"valid_{metric}"
        ev = df.dropna(subset=[col]) if col in df.columns else df.iloc[0:0]
        if len(ev):
            ax2.plot(ev["epoch"], ev[col], marker="o", ms=3, color=color, label=name)
            best = ev.loc[ev[col].idxmax()]
            ax2.scatter([best["epoch"]], [best[col]], s=80, facecolors="none", edgecolors=color, linewidths=1.5)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss (mean per batch)")
    ax1.set_yscale("log")
    ax1.legend(frameon=False, fontsize=8)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel(f"validation {metric}")
    ax2.legend(frameon=False, fontsize=8, title="circle = selected epoch", title_fontsize=8)
    fig.suptitle("GNN training (model selection on the validation item)")
    return fig


def distinctive_genre(genres: Sequence[Sequence[str]], top: int = 8) -> list[str]:
    """One label per item: the least frequent of its genres (the most telling one; e.g. a
    'Comedy|Romance' film is labelled Romance), restricted to the ``top`` most frequent labels,
    others 'other'; items without genres 'unknown'."""
    freq = Counter(g for gs in genres for g in gs)
    raw = [min(gs, key=lambda g: (freq[g], g)) if len(gs) else "unknown" for gs in genres]
    keep = {g for g, _ in Counter(r for r in raw if r != "unknown").most_common(top)}
    return [r if r in keep or r == "unknown" else "other" for r in raw]


def tsne_coordinates(embeddings: np.ndarray, seed: int, perplexity: float = 30.0) -> np.ndarray:
    """2-d t-SNE (cosine distance, PCA initialisation) of ``embeddings [n, d] -> [n, 2]``."""
    from sklearn.manifold import TSNE  # heavy import; only this figure needs it

    perplexity = min(perplexity, max(2.0, (len(embeddings) - 1) / 3))
    return TSNE(
        n_components=2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed, max_iter=500
    ).fit_transform(np.asarray(embeddings, dtype=np.float32))


def tsne_by_label(coords: np.ndarray, labels: Sequence[str], title: str) -> Figure:
    """Scatter of ``coords [n, 2]`` coloured by ``labels`` (largest groups first in the legend). When every label
    is ``unknown`` (no item has a genre: an LC-Rec folder with codes and no item text) the points are drawn in one
    visible colour rather than the pale grey of a few unknowns among known genres."""
    fig = Figure(figsize=(7.5, 6))
    ax = fig.subplots()
    order = [g for g, _ in Counter(labels).most_common() if g not in ("other", "unknown")]
    lab = np.asarray(labels)
    if len(lab) and (lab == "unknown").all():
        ax.scatter(
            coords[:, 0],
            coords[:, 1],
            s=9,
            color=PALETTE[0],
            label=f"no genres ({len(lab)} items)",
            alpha=0.85,
            linewidths=0,
        )
    else:
        for g, color in (("other", "#D0D0D0"), ("unknown", "#E8E8E8")):
            m = lab == g
            if m.any():
                ax.scatter(coords[m, 0], coords[m, 1], s=6, color=color, label=g, alpha=0.6, linewidths=0)
        for k, g in enumerate(order):
            m = lab == g
            ax.scatter(
                coords[m, 0],
                coords[m, 1],
                s=9,
                color=PALETTE[k % len(PALETTE)],
                label=f"{g} ({m.sum()})",
                alpha=0.85,
                linewidths=0,
            )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(frameon=False, fontsize=8, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title(title)
    return fig
