"""Figures and tables of the LM stage: loss curves, per-level validation accuracy, parameter counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def loss_curves_figure(steps: pd.DataFrame, evals: pd.DataFrame, title: str = "") -> Figure:
    """Training loss per optimizer step (raw and smoothed) with validation loss per epoch (left),
    and validation next-item accuracy per epoch (right).

    ``steps``: columns ``step, loss`` (``loss_curve.csv``); ``evals``: ``step, epoch, val_loss,
    val_item_acc`` (``val_curve.csv``).
    """
    fig = Figure(figsize=(10, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    window = max(1, len(steps) // 50)
    if window > 1:
        ax1.plot(steps["step"], steps["loss"], color="#4C72B0", alpha=0.25, lw=0.8, label="train (per step)")
        ax1.plot(
            steps["step"],
            steps["loss"].rolling(window, min_periods=1).mean(),
            color="#4C72B0",
            label=f"train (mean of {window} steps)",
        )
    else:
        ax1.plot(steps["step"], steps["loss"], color="#4C72B0", label="train")
    ax1.plot(evals["step"], evals["val_loss"], "o-", color="#C44E52", label="validation")
    ax1.set_xlabel("optimizer step")
    ax1.set_ylabel("mean token NLL of the codes")
    ax1.legend(frameon=False)
    ax2.plot(evals["epoch"], evals["val_item_acc"], "o-", color="#55A868")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation next-item accuracy (greedy)")
    ax2.set_xticks(evals["epoch"])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def level_accuracy_table(evals: pd.DataFrame) -> pd.DataFrame:
    """Per-level token accuracy of the last evaluation: one row per code level, teacher-forced
    (the correct previous codes are given), argmax over the whole vocabulary."""
    last = evals.iloc[-1]
    levels = sorted(int(c.rsplit("l", 1)[1]) for c in evals.columns if c.startswith("val_acc_l"))
    rows = [
        {"level": lvl, "token": f"<{chr(ord('a') + lvl)}_*>", "accuracy": float(last[f"val_acc_l{lvl}"])}
        for lvl in levels
    ]
    rows.append({"level": "all", "token": "next item (all levels)", "accuracy": float(last["val_item_acc"])})
    return pd.DataFrame(rows)


def parameter_table(record: dict) -> pd.DataFrame:
    """Total and trainable parameters of the trained model (tied weights counted once)."""
    p = record["params"]
    return pd.DataFrame(
        [
            {
                "backbone": record["backbone"],
                "finetune": record["finetune"],
                "total": p["total"],
                "trainable": p["trainable"],
                "trainable_share": p["trainable"] / p["total"] if p["total"] else np.nan,
            }
        ]
    )
