"""Token homogeneity of beams (paper Fig. 2): how many distinct code prefixes the top beams share."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def distinct_prefixes(beam_items: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Number of distinct code prefixes of each length among each user's beams.

    Args:
        beam_items: ``[n_users, B]`` item ids of the returned beams, ``-1`` for a missing beam.
        codes: ``[n_items, n_levels]`` the code table.

    Returns:
        int64 ``[n_users, n_levels]``; column ``l`` counts distinct prefixes of length ``l + 1``
        (column 0 = distinct first codes).
    """
    beam_items = np.asarray(beam_items)
    codes = np.asarray(codes)
    n_users, _ = beam_items.shape
    n_levels = codes.shape[1]
    out = np.zeros((n_users, n_levels), dtype=np.int64)
    for u in range(n_users):
        items = beam_items[u][beam_items[u] >= 0]
        if len(items) == 0:
            continue
        c = codes[items]
        for lvl in range(n_levels):
            out[u, lvl] = len(np.unique(c[:, : lvl + 1], axis=0))
    return out


def homogeneity_summary(counts: dict[str, np.ndarray], n_beams: int | None = None) -> "pd.DataFrame":
    """Mean (and median) distinct prefixes per level for each setting.

    Args:
        counts: ``{setting: [n_users, n_levels]}`` from :func:`distinct_prefixes`.
        n_beams: shown in the table as the number of beams counted.
    Returns:
        One row per setting: ``setting``, then ``mean L1`` … ``mean Ln`` and ``median L1`` … (users without a
        single returned beam are left out of the averages; ``users`` says how many remain).
    """
    import pandas as pd

    rows = []
    for name, c in counts.items():
        c = np.asarray(c)
        keep = c[:, 0] > 0
        row = {"setting": name, "users": int(keep.sum())}
        if n_beams is not None:
            row["beams"] = n_beams
        for lvl in range(c.shape[1]):
            row[f"mean L{lvl + 1}"] = float(c[keep, lvl].mean()) if keep.any() else float("nan")
        for lvl in range(c.shape[1]):
            row[f"median L{lvl + 1}"] = float(np.median(c[keep, lvl])) if keep.any() else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def homogeneity_figure(counts: dict[str, np.ndarray], n_beams: int, levels: int | None = None):
    """Histograms of distinct prefixes per user, one panel per code level, one colour per setting
    (paper Fig. 2 is the first panel: distinct first codes among the top beams)."""
    from matplotlib.figure import Figure

    first = next(iter(counts.values()))
    n_levels = first.shape[1] if levels is None else min(levels, first.shape[1])
    fig = Figure(figsize=(4.2 * n_levels, 3.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n_levels))  # type: ignore[call-overload]  # one Axes or an array
    for lvl, ax in enumerate(axes):
        hi = max(int(np.asarray(c)[:, lvl].max()) for c in counts.values())
        bins = np.arange(0.5, max(hi, 1) + 1.5)
        for name, c in counts.items():
            v = np.asarray(c)[:, lvl]
            v = v[np.asarray(c)[:, 0] > 0]
            ax.hist(v, bins=bins, alpha=0.55, label=f"{name} (mean {v.mean():.2f})" if len(v) else name)
        ax.set_xlabel(f"distinct prefixes of length {lvl + 1}" if lvl else "distinct first codes")
        ax.set_ylabel("users")
        # Above the panel, not inside it: the histograms fill the middle of the panel, where a legend would sit
        # on the bars.
        ax.legend(frameon=False, fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 1.0), borderaxespad=0.2)
    fig.suptitle(f"Token homogeneity of the top-{n_beams} beams", fontsize=11)
    return fig
