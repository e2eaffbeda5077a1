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
        hit_lm: bool ``[n_users]`` hit indicators of the LM.
        hit_gnn: bool ``[n_users]`` hit indicators of the GNN, the same users in the same order.
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


def complementarity_by_bucket(
    hit_lm: np.ndarray, hit_gnn: np.ndarray, values: np.ndarray, edges: list[float], name: str = "bucket"
) -> pd.DataFrame:
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
        raise ValueError(
            f"{int(outside.sum())} value(s) fall outside the bucket edges {edges} (e.g. {values[outside][0]!r})"
        )
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


def target_popularity(train: list[np.ndarray], targets: np.ndarray, n_items: int) -> np.ndarray:
    """Training interactions of each user's target item ``[n_users]`` (0 for a cold target).

    Counted on the training sequences only, so the held-out items do not inflate their own popularity."""
    counts = (
        np.bincount(np.concatenate(train).astype(np.int64), minlength=n_items)
        if len(train)
        else np.zeros(n_items, np.int64)
    )
    return counts[np.asarray(targets, dtype=np.int64)]


def complementarity_breakdown(
    lm_items: np.ndarray,
    gnn_items: np.ndarray,
    targets: np.ndarray,
    history_lengths: np.ndarray,
    popularity: np.ndarray,
    k: int = 10,
    activity_buckets: int = 4,
    popularity_buckets: int = 4,
) -> dict[str, object]:
    """Paper Fig. 1, overall and per bucket of user activity and of target popularity.

    Args:
        lm_items: ``[n_users, K]`` ranking of α = 0 decoding, -1 pads.
        gnn_items: ``[n_users, K]`` the GNN's full sort, -1 pads.
        targets: ``[n_users]`` the held-out item.
        history_lengths: ``[n_users]`` items the model saw for the user.
        popularity: ``[n_users]`` training interactions of the target (:func:`target_popularity`).
        k: the hit cut-off.
        activity_buckets: number of quantile buckets of history length (fewer when quantiles coincide).
        popularity_buckets: number of quantile buckets of target popularity (fewer when quantiles coincide).

    Returns:
        ``{"overall": {group: count}, "by_activity": DataFrame, "by_popularity": DataFrame,
        "hit_lm": bool [n_users], "hit_gnn": bool [n_users]}``; each DataFrame row adds up to its ``users``.
    """
    hit_lm, hit_gnn = hits_at_k(lm_items, targets, k), hits_at_k(gnn_items, targets, k)
    by_act = complementarity_by_bucket(
        hit_lm, hit_gnn, history_lengths, quantile_edges(history_lengths, activity_buckets), name="history length"
    )
    by_pop = complementarity_by_bucket(
        hit_lm, hit_gnn, popularity, quantile_edges(popularity, popularity_buckets), name="target popularity"
    )
    return {
        "overall": complementarity(hit_lm, hit_gnn),
        "by_activity": by_act,
        "by_popularity": by_pop,
        "hit_lm": hit_lm,
        "hit_gnn": hit_gnn,
    }


_COLOURS = {"LLM only": "#4c72b0", "GNN only": "#dd8452", "both": "#55a868", "neither": "#c7c7c7"}


def complementarity_figure(
    overall: dict[str, int], by_activity: pd.DataFrame, by_popularity: pd.DataFrame, k: int = 10
):
    """Three panels: the overall split of users (Fig. 1), then the share of each group per bucket."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.8))
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1.4, 1.4]})
    n = sum(overall.values())
    bars = axes[0].bar(list(overall), list(overall.values()), color=[_COLOURS[g] for g in overall])
    axes[0].bar_label(bars, labels=[f"{v}\n({v / max(n, 1):.0%})" for v in overall.values()], fontsize=8)
    # Two-word group names on two lines: side by side they run into each other ("LLM onlyGNN only").
    axes[0].set_xticks(range(len(overall)), [g.replace(" ", "\n") for g in overall])
    axes[0].set_ylabel("users")
    axes[0].set_title(f"hit@{k}: LM alone (α=0) vs GNN alone", fontsize=10)
    axes[0].margins(y=0.25)
    for ax, df in ((axes[1], by_activity), (axes[2], by_popularity)):
        label = df.columns[0]
        share = df[list(GROUPS)].div(df["users"].clip(lower=1), axis=0)
        bottom = np.zeros(len(df))
        for g in GROUPS:
            ax.bar(range(len(df)), share[g], bottom=bottom, color=_COLOURS[g], label=g)
            bottom += share[g].to_numpy()
        ax.set_xticks(range(len(df)), [f"{b}\nn={u}" for b, u in zip(df[label], df["users"], strict=False)], fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylabel("share of users")
        ax.set_ylim(0, 1)
    axes[2].legend(frameon=False, fontsize=8, bbox_to_anchor=(1.0, 1.0), loc="upper left")
    fig.tight_layout()
    return fig
