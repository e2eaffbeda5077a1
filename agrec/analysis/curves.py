"""α curves (paper Fig. 7): HR@10 and NDCG@10 against the mixing weight α.

A curve may lack a target's metrics at some points (``evaluation.test_curve: false`` decodes the test item
only where a table row needs it): the figures plot the points that exist, as markers joined only where
the curve is complete.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from agrec.errors import AgrecError

METRICS = ("HR@10", "NDCG@10")


def alpha_curve_figure(
    curve: pd.DataFrame, chosen_alpha: float | None = None, title: str = "", tau: float | None = None
) -> Figure:
    """Two panels (HR@10, NDCG@10) with one line per target.

    Args:
        curve: long format with columns alpha, tau, target, metric, value (``DecodeReport.curve_frame``).
        chosen_alpha: marked with a vertical line (the α chosen on validation).
        tau: plot this τ only (default: the first τ in ``curve``).
    """
    tau = curve["tau"].iloc[0] if tau is None else tau
    c = curve[curve["tau"] == tau]
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, METRICS, strict=False):
        for target, style in (("valid", "-o"), ("test", "--s")):
            d = c[(c["metric"] == metric) & (c["target"] == target)].sort_values("alpha")
            if d.empty:
                continue
            partial = d["alpha"].nunique() < c["alpha"].nunique()
            ax.plot(
                d["alpha"],
                d["value"],
                style[-1] if partial else style,
                ms=4,
                label=f"{target} (table points)" if partial else target,
            )
        if chosen_alpha is not None:
            ax.axvline(chosen_alpha, color="#999999", ls=":", label=f"chosen α={chosen_alpha:g}")
        ax.set_xlabel("α (weight of the GNN's FSM)")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0].legend(frameon=False)
    fig.suptitle(title or f"α curve (τ={tau:g})")
    return fig


def alpha_curves_across_runs(curves: dict[str, pd.DataFrame], target: str = "test") -> Figure:
    """One line per run (dataset/profile) for each metric, on ``target``."""
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    axes = fig.subplots(1, 2)
    for label, curve in curves.items():
        tau = curve["tau"].iloc[0]
        for ax, metric in zip(axes, METRICS, strict=False):
            d = curve[(curve["metric"] == metric) & (curve["target"] == target) & (curve["tau"] == tau)]
            d = d.sort_values("alpha")
            if d.empty:
                continue
            full = d["alpha"].nunique() == curve.loc[curve["tau"] == tau, "alpha"].nunique()
            ax.plot(d["alpha"], d["value"], "-o" if full else "o", ms=4, label=label)
    for ax, metric in zip(axes, METRICS, strict=False):
        ax.set_xlabel("α")
        ax.set_ylabel(f"{metric} ({target})")
        ax.grid(alpha=0.3)
    if axes[0].get_lines():
        axes[0].legend(frameon=False, fontsize=8)
    fig.suptitle("α curves across runs")
    return fig


def scan_alpha_curves(runs_root: str | Path) -> dict[str, pd.DataFrame]:
    """The α curve of every run that has one: ``runs/<dataset>/<profile>/decode/results.json``.

    Returns ``{"<dataset>/<profile>": curve}`` (long format, see :func:`alpha_curve_figure`), sorted by label;
    a point without a target's metrics (``"test": null``) has no records for it. A results file that
    cannot be read is an :class:`AgrecError` naming it."""
    import json

    out: dict[str, pd.DataFrame] = {}
    for path in sorted(Path(runs_root).glob("*/*/decode/results.json")):
        try:
            d = json.loads(path.read_text())
            recs = [
                {"alpha": p["alpha"], "tau": p["tau"], "target": t, "metric": m, "value": v}
                for p in d["curve"]
                for t in ("valid", "test")
                for m, v in (p.get(t) or {}).items()
            ]
        except (ValueError, KeyError, TypeError) as e:
            raise AgrecError(f"{path}: not a decode results file ({type(e).__name__}: {e})") from None
        if recs:
            out[f"{path.parents[2].name}/{path.parents[1].name}"] = pd.DataFrame(recs)
    return out
