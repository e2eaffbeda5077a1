"""Figures of the semantic-ID stage: loss curves, code usage, and the code tree (interactive + static)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from agrec.io import atomic_path
from agrec.semantic_ids.codes import CodeTable, code_token


def loss_curves(log: pd.DataFrame, best_epoch: int | None = None, title: str = "RQ-VAE training") -> Figure:
    """Left: training loss, reconstruction and quantisation terms per epoch; right: collision rate and
    reconstruction error of all items at the evaluation epochs (the checkpoint criterion; epoch 0 is the
    k-means initialisation), with the selected ``best_epoch`` marked."""
    fig = Figure(figsize=(10, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    train = log.dropna(subset=["loss"]) if "loss" in log else log.iloc[0:0]
    for col, color in (("loss", "#4C72B0"), ("recon", "#55A868"), ("quant", "#C44E52")):
        if col in train and len(train):
            ax1.plot(train["epoch"], train[col], label=col, color=color, lw=1.2)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss (standardised units)")
    ax1.set_title(title)
    if len(train):
        ax1.legend(frameon=False)
    ev = log.dropna(subset=["collision_rate"]) if "collision_rate" in log else log.iloc[0:0]
    if len(ev):
        ax2.plot(ev["epoch"], ev["collision_rate"], "o-", color="#8172B2", ms=3, label="collision rate")
        ax2.set_ylabel("collision rate", color="#8172B2")
        ax3 = ax2.twinx()
        ax3.plot(ev["epoch"], ev["eval_recon"], "s--", color="#55A868", ms=3, label="recon error (all items)")
        ax3.set_ylabel("reconstruction error", color="#55A868")
        if best_epoch is not None:
            ax2.axvline(best_epoch, color="0.4", ls=":", lw=1)
            ax2.annotate(
                f"selected: epoch {best_epoch}",
                (best_epoch, 0.97),
                xycoords=("data", "axes fraction"),
                ha="right",
                va="top",
                fontsize=8,
                color="0.3",
            )
    ax2.set_xlabel("epoch")
    ax2.set_title("evaluation (checkpoint selection)")
    fig.tight_layout()
    return fig


def code_usage(codes: np.ndarray, codebook_sizes: Sequence[int]) -> Figure:
    """Per level, the items per code sorted in decreasing order (a flat line = balanced use)."""
    n_levels = len(codebook_sizes)
    fig = Figure(figsize=(3.2 * n_levels, 3.0))
    axes = np.atleast_1d(fig.subplots(1, n_levels, sharey=True))
    for lvl, (ax, k) in enumerate(zip(axes, codebook_sizes, strict=False)):
        counts = np.sort(np.bincount(codes[:, lvl], minlength=k))[::-1]
        ax.bar(np.arange(k), counts, width=1.0, color="#4C72B0")
        ax.axhline(len(codes) / k, color="#C44E52", ls="--", lw=1, label="balanced")
        used = int((counts > 0).sum())
        ax.set_title(f"level {lvl} <{code_token(lvl, 0)[1]}_·>: {used}/{k} used", fontsize=9)
        ax.set_xlabel("code (by frequency)")
    axes[0].set_ylabel("items")
    axes[0].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def code_tree_figure(table: CodeTable, titles: Sequence[str], kind: str = "sunburst", max_depth: int = 3):
    """Interactive plotly tree level 1 -> level 2 -> items (titles and full IDs on hover).

    ``kind`` is ``sunburst`` or ``treemap``; ``max_depth`` rings/levels are shown at once (click to zoom).
    """
    import plotly.graph_objects as go

    ids, labels, parents, values, hover = [], [], [], [], []
    codes = table.codes
    n1: dict[int, list[int]] = {}
    n2: dict[tuple[int, int], list[int]] = {}
    for i in range(table.n_items):
        a, b = int(codes[i, 0]), int(codes[i, 1]) if table.n_levels > 1 else 0
        n1.setdefault(a, []).append(i)
        n2.setdefault((a, b), []).append(i)

    def sample(items: list[int], k: int = 5) -> str:
        return "<br>".join(_esc(titles[j]) for j in items[:k]) + ("<br>…" if len(items) > k else "")

    for a, items in sorted(n1.items()):
        ids.append(f"a{a}")
        labels.append(code_token(0, a))
        parents.append("")
        values.append(len(items))
        hover.append(f"{code_token(0, a)}: {len(items)} items<br>{sample(items)}")
    if table.n_levels > 1:
        for (a, b), items in sorted(n2.items()):
            ids.append(f"a{a}/b{b}")
            labels.append(code_token(1, b))
            parents.append(f"a{a}")
            values.append(len(items))
            hover.append(f"{code_token(0, a)}{code_token(1, b)}: {len(items)} items<br>{sample(items)}")
    for i in range(table.n_items):
        a = int(codes[i, 0])
        parent = f"a{a}/b{int(codes[i, 1])}" if table.n_levels > 1 else f"a{a}"
        ids.append(f"item{i}")
        labels.append(_esc(_short(titles[i])))
        parents.append(parent)
        values.append(1)
        hover.append(f"{_esc(titles[i])}<br>{''.join(table.item_tokens(i))}")
    trace_cls = go.Sunburst if kind == "sunburst" else go.Treemap
    trace = trace_cls(
        ids=ids,
        labels=labels,
        parents=parents,
        values=values,
        branchvalues="total",
        hovertext=hover,
        hoverinfo="text",
        maxdepth=max_depth,
    )
    fig = go.Figure(trace)
    fig.update_layout(
        margin=dict(t=40, l=0, r=0, b=0),
        height=700,
        title=f"Code tree: level 1 -> level 2 -> items ({table.n_items} items)",
    )
    return fig


def _short(s: str, n: int = 28) -> str:
    s = str(s)
    return s if len(s) <= n else s[: n - 1] + "…"


def _esc(s: str) -> str:
    return str(s).replace("<", "&lt;").replace(">", "&gt;")


def code_tree_static(
    table: CodeTable, titles: Sequence[str], genres: Sequence[Sequence[str]] | None = None, label_top: int = 12
) -> Figure:
    """A static sunburst (nested rings): inner ring = first codes, outer ring = second codes, wedge size
    = items. The ``label_top`` largest first codes are labelled with their token and their most common
    genre with its share (when ``genres`` are given), else an example title."""
    codes = table.codes
    fig = Figure(figsize=(8, 8))
    ax = fig.subplots()
    firsts, counts1 = np.unique(codes[:, 0], return_counts=True)
    order = np.argsort(-counts1, kind="stable")
    firsts, counts1 = firsts[order], counts1[order]
    cmap = _cmap(len(firsts))
    inner_colors = [cmap(i) for i in range(len(firsts))]
    outer_sizes, outer_colors = [], []
    for i, a in enumerate(firsts):
        sub = codes[codes[:, 0] == a]
        if table.n_levels > 1:
            _, c2 = np.unique(sub[:, 1], return_counts=True)
        else:
            c2 = np.array([len(sub)])
        for j, c in enumerate(sorted(c2, reverse=True)):
            outer_sizes.append(c)
            base = np.array(inner_colors[i])
            shade = 0.55 + 0.45 * (j % 2)
            outer_colors.append(tuple(np.clip(base[:3] * shade + (1 - shade) * 0.9, 0, 1)) + (1.0,))
    ax.pie(outer_sizes, radius=1.0, colors=outer_colors, wedgeprops=dict(width=0.3, edgecolor="white", lw=0.2))
    wedges, _ = ax.pie(counts1, radius=0.7, colors=inner_colors, wedgeprops=dict(width=0.4, edgecolor="white", lw=0.5))
    # Labels outside the rings with a leader line: inside, neighbouring labels of similar-sized wedges overlap.
    for i, (a, w) in enumerate(zip(firsts, wedges, strict=False)):
        if i >= label_top:
            break
        members = np.flatnonzero(codes[:, 0] == a)
        if genres is not None:
            cnt = Counter(g for j in members for g in set(genres[int(j)]))
            top, k = cnt.most_common(1)[0] if cnt else ("?", 0)
            desc = f"{_short(top, 14)} {k / len(members):.0%}"
        else:
            desc = _short(titles[int(members[0])], 18)
        ang = np.deg2rad((w.theta1 + w.theta2) / 2)
        x, y = np.cos(ang), np.sin(ang)
        ax.annotate(
            f"{code_token(0, int(a))} {desc}",
            xy=(0.5 * x, 0.5 * y),
            xytext=(1.18 * x, 1.18 * y),
            ha="left" if x >= 0 else "right",
            va="center",
            fontsize=7,
            arrowprops=dict(arrowstyle="-", color="0.4", lw=0.5),
        )
    ax.set_title(
        f"Code tree: inner ring = level-1 codes ({len(firsts)}), outer ring = level-2 codes "
        f"({len(np.unique(codes[:, :2], axis=0)) if table.n_levels > 1 else len(firsts)})",
        fontsize=10,
    )
    ax.set(aspect="equal")
    return fig


def _cmap(n: int):
    import matplotlib

    return matplotlib.colormaps["tab20"].resampled(max(n, 1)) if n > 20 else matplotlib.colormaps["tab20"]


def save_plotly_html(fig, path: str | Path, static_dir: str | Path | None = None) -> Path:
    """Write an interactive HTML file of a plotly figure.

    With ``static_dir`` (the reports' ``_static/`` folder, which ``agrec report`` also fills for the
    notebooks' HTML), plotly.js is copied there once from the installed plotly package and referenced
    relatively: the file renders offline and stays small. Without it, plotly.js comes from its CDN.
    """
    import shutil

    import plotly

    path = Path(path)
    src: str | bool = "cdn"
    if static_dir is not None:
        static_dir = Path(static_dir)
        js = static_dir / "plotly.min.js"
        if not js.is_file():
            bundled = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
            static_dir.mkdir(parents=True, exist_ok=True)
            with atomic_path(js) as tmp:
                shutil.copyfile(bundled, tmp)
        src = Path(os.path.relpath(js, path.parent)).as_posix()
    with atomic_path(path) as tmp:
        fig.write_html(str(tmp), include_plotlyjs=src, full_html=True)
    return path
