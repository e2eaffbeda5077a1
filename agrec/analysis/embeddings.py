"""t-SNE of item representations: the RQ-VAE latents, the GNN's item embeddings and the LM's code-token
embeddings, coloured by first code and by genre. Do items with the same first code sit together in each
space, and does the GNN's (collaborative) geometry agree with the text-derived codes?"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from agrec.errors import AgrecError


def rqvae_latents(folder: str | Path, embeddings: np.ndarray) -> np.ndarray | None:
    """The RQ-VAE encoder's latents ``[n_items, code_dim]`` of the text ``embeddings`` ``[n_items, D]``, from
    the semantic-ID stage's checkpoint in ``folder``; None when codes were given (no RQ-VAE was trained)."""
    from agrec.semantic_ids.stage import CHECKPOINT, load_rqvae

    if not (Path(folder) / CHECKPOINT).is_file():
        return None
    model = load_rqvae(Path(folder))
    with torch.no_grad():
        z = model.encoder(model.standardize(torch.as_tensor(embeddings, dtype=torch.float32)))
    return z.numpy()


def lm_code_embeddings(model: Any, item_token_ids: torch.Tensor | np.ndarray) -> np.ndarray:
    """Each item's LM representation ``[n_items, d]``: the mean of the input-embedding rows of its code
    tokens (``item_token_ids [n_items, L]``, vocabulary ids)."""
    emb = model.get_input_embeddings().weight.detach().float().cpu()
    ids = torch.as_tensor(np.asarray(item_token_ids), dtype=torch.long)
    if int(ids.max()) >= emb.shape[0]:
        raise AgrecError(
            f"item_token_ids holds token {int(ids.max())}, outside the model's {emb.shape[0]} input embeddings"
        )
    return emb[ids].mean(1).numpy()


def first_genres(item_info, n_items: int, column: str = "genres") -> list[str]:
    """Each item's first genre/category (``"?"`` when unknown), for colouring."""
    if item_info is None or column not in getattr(item_info, "columns", []):
        return ["?"] * n_items
    out = []
    for i in range(n_items):
        g = item_info[column].iloc[i] if i < len(item_info) else None
        if isinstance(g, str):
            g = [x.strip() for x in g.replace("|", ",").split(",") if x.strip()]
        out.append(str(g[0]) if g is not None and len(g) else "?")
    return out


def sample_items(n_items: int, n: int, seed: int) -> np.ndarray:
    """A sorted random sample of ``min(n, n_items)`` item ids (all items when the catalogue is small)."""
    if n >= n_items:
        return np.arange(n_items)
    return np.sort(np.random.default_rng(seed).choice(n_items, size=n, replace=False))


def tsne_2d(x: np.ndarray, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """2-D t-SNE ``[n, 2]`` of ``x [n, d]`` (scikit-learn, PCA init, Euclidean distance between
    standardised columns); the perplexity is capped below ``n`` as scikit-learn requires.

    Runs on one thread: on a shared few-core machine scikit-learn's OpenMP threads oversubscribe the CPU
    (40 points took 48 s with the default pool vs 1.8 s single-threaded, measured side by side)."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = np.asarray(x, dtype=np.float64)
    if len(x) < 5:
        raise AgrecError(f"t-SNE needs at least 5 points, got {len(x)}")
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    perp = float(min(perplexity, (len(x) - 1) / 3))
    with threadpool_limits(1):
        return (
            TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed, learning_rate="auto")
            .fit_transform(x)
            .astype(np.float32)
        )


def _colour_codes(labels: Sequence, top: int = 12) -> tuple[np.ndarray, list[str]]:
    """Integer colour per point: the ``top`` most frequent labels get their own colour, the rest "other"."""
    vals, counts = np.unique(np.asarray(labels, dtype=str), return_counts=True)
    keep = [str(v) for v in vals[np.argsort(-counts, kind="stable")][:top]]
    idx = {v: i for i, v in enumerate(keep)}
    return np.array([idx.get(str(v), len(keep)) for v in labels]), keep + (["other"] if len(vals) > top else [])


def tsne_figure(coords: dict[str, np.ndarray], colourings: dict[str, Sequence]):
    """A grid of scatter plots: one row per representation, one column per colouring.

    Args:
        coords: ``{representation: [n, 2]}`` t-SNE coordinates of the same ``n`` items.
        colourings: ``{"first code": labels [n], "genre": labels [n]}``.
    """
    import matplotlib
    from matplotlib.figure import Figure

    cmap = matplotlib.colormaps["tab20"]
    fig = Figure(figsize=(5.2 * len(colourings), 4.2 * len(coords)))
    axes = np.asarray(fig.subplots(len(coords), len(colourings), squeeze=False))
    for r, (rep, y) in enumerate(coords.items()):
        for c, (cname, labels) in enumerate(colourings.items()):
            ax = axes[r, c]
            col, names = _colour_codes(labels)
            ax.scatter(
                y[:, 0],
                y[:, 1],
                c=[
                    cmap(i % 20) if n != "other" else (0.8, 0.8, 0.8, 1)
                    for i, n in zip(col, [names[j] for j in col], strict=False)
                ],
                s=6,
                linewidths=0,
            )
            ax.set_title(f"{rep} · coloured by {cname}", fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                handles = [
                    matplotlib.lines.Line2D(
                        [],
                        [],
                        ls="",
                        marker="o",
                        ms=4,
                        color=cmap(i % 20) if n != "other" else (0.8, 0.8, 0.8, 1),
                        label=n,
                    )
                    for i, n in enumerate(names)
                ]
                ax.legend(handles=handles, fontsize=6, frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    fig.tight_layout()
    return fig


def tsne_plotly(coords: dict[str, np.ndarray], colourings: dict[str, Sequence], hover: Sequence[str]):
    """The same grid as :func:`tsne_figure` as one interactive plotly figure (titles on hover)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    titles = [f"{rep} · {c}" for rep in coords for c in colourings]
    fig = make_subplots(rows=len(coords), cols=len(colourings), subplot_titles=titles)
    for r, y in enumerate(coords.values(), start=1):
        for c, (cname, labels) in enumerate(colourings.items(), start=1):
            col, names = _colour_codes(labels)
            for j, name in enumerate(names):
                m = col == j
                fig.add_trace(
                    go.Scattergl(
                        x=y[m, 0],
                        y=y[m, 1],
                        mode="markers",
                        marker={"size": 4},
                        name=f"{cname}: {name}",
                        legendgroup=f"{cname}:{name}",
                        showlegend=(r == 1),
                        text=[hover[int(i)] for i in np.flatnonzero(m)],
                        hoverinfo="text",
                    ),
                    row=r,
                    col=c,
                )
    fig.update_layout(height=360 * len(coords), width=520 * len(colourings), margin={"t": 40})
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return fig
