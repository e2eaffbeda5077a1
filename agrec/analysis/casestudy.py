"""Case study (paper Fig. 8): one user's history, the GNN's top-n, and the beams with their token-level
p_LLM, p_G, p̂ and FSM on/off, the hit marked. Plain tables from a traced decode, plus a static figure."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from agrec.decode.beam import DecodeResult


def token_labels(
    item_token_ids: torch.Tensor | np.ndarray, item_codes: Sequence[Sequence[str]] | None = None
) -> dict[int, str]:
    """``{vocabulary id: label}`` of every code token: the code's name (``<a_35>``) from ``item_codes`` (one
    token list per item, e.g. ``CodeTable.item_tokens``), else ``L<level>:<id>``."""
    ids = np.asarray(item_token_ids)
    out: dict[int, str] = {}
    for i in range(ids.shape[0]):
        for lvl in range(ids.shape[1]):
            t = int(ids[i, lvl])
            if t not in out:
                out[t] = str(item_codes[i][lvl]) if item_codes is not None else f"L{lvl + 1}:{t}"
    return out


def _label(labels: Mapping[int, str] | None, tok: int) -> str:
    return labels.get(int(tok), str(int(tok))) if labels is not None else str(int(tok))


def history_table(history: Sequence[int] | np.ndarray, titles: Sequence[str], last: int | None = 10) -> pd.DataFrame:
    """The user's history, oldest first (only the ``last`` items when given): position, item, title."""
    h = list(history)
    start = max(0, len(h) - last) if last else 0
    return pd.DataFrame(
        [{"position": p + 1, "item": int(i), "title": titles[int(i)]} for p, i in enumerate(h) if p >= start]
    )


def gnn_top_table(
    top_items: Sequence[int] | np.ndarray,
    top_scores: Sequence[float] | np.ndarray,
    titles: Sequence[str],
    target: int,
    tau: float = 1.0,
) -> pd.DataFrame:
    """The GNN's top-n of one user: rank, item, title, score R(u, v), FSM weight w = softmax(score / τ), hit."""
    items = np.asarray(top_items)
    scores = np.asarray(top_scores, dtype=np.float64)
    ok = items >= 0
    w = np.zeros(len(items))
    if ok.any():
        z = scores[ok] / tau
        w[ok] = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    return pd.DataFrame(
        [
            {
                "rank": r + 1,
                "item": int(i),
                "title": titles[int(i)],
                "score": float(s),
                "weight": float(wi),
                "hit": bool(i == target),
            }
            for r, (i, s, wi) in enumerate(zip(items, scores, w, strict=False))
            if i >= 0
        ]
    )


def beams_table(
    result: DecodeResult, row: int, titles: Sequence[str], target: int, labels: Mapping[int, str] | None = None
) -> pd.DataFrame:
    """One line per returned beam of user ``row``: rank, item, title, its code, score Σ log p̂, how many of its
    tokens were decoded on the FSM, hit. Needs a traced decode for the code and FSM columns."""
    items = result.items[row].numpy()
    scores = result.scores[row].numpy()
    tr = result.trace
    rows = []
    for b, (item, score) in enumerate(zip(items, scores, strict=False)):
        if item < 0:
            continue
        rec = {"rank": b + 1, "item": int(item), "title": titles[int(item)], "score": float(score)}
        if tr is not None:
            rec["code"] = "".join(_label(labels, t) for t in tr.tokens[row, b].tolist())
            rec["on FSM"] = f"{int(tr.on[row, b].sum())}/{tr.on.shape[-1]}"
        rec["hit"] = bool(item == target)
        rows.append(rec)
    return pd.DataFrame(rows)


def trace_table(
    result: DecodeResult,
    row: int,
    titles: Sequence[str],
    target: int,
    labels: Mapping[int, str] | None = None,
    n_beams: int | None = None,
) -> pd.DataFrame:
    """Token level: one line per (beam, level) of user ``row``'s top ``n_beams`` beams with the token, p_LLM,
    p_G (NaN off the FSM), p̂, whether the prefix was on the FSM, and whether the beam is the hit."""
    tr = result.trace
    if tr is None:
        raise ValueError("trace_table needs a DecodeResult from generate_items(..., trace=True)")
    items = result.items[row].numpy()
    n = len(items) if n_beams is None else min(n_beams, len(items))
    out = []
    for b in range(n):
        if items[b] < 0:
            continue
        for lvl in range(tr.tokens.shape[-1]):
            out.append(
                {
                    "rank": b + 1,
                    "item": int(items[b]),
                    "title": titles[int(items[b])],
                    "level": lvl + 1,
                    "token": _label(labels, int(tr.tokens[row, b, lvl])),
                    "p_LLM": float(tr.p_llm[row, b, lvl]),
                    "p_G": float(tr.p_g[row, b, lvl]),
                    "p_hat": float(tr.p_hat[row, b, lvl]),
                    "on FSM": bool(tr.on[row, b, lvl]),
                    "hit": bool(items[b] == target),
                }
            )
    return pd.DataFrame(out)


def pick_case_user(hit_agrec: np.ndarray, hit_lm: np.ndarray, preferred: int | None = None) -> int:
    """The case-study user's row: ``preferred`` when given, else the first user AGRec hits and α = 0 misses
    (the paper's kind of example), else the first user AGRec hits, else 0."""
    if preferred is not None:
        return int(preferred)
    for mask in (np.asarray(hit_agrec) & ~np.asarray(hit_lm), np.asarray(hit_agrec)):
        if mask.any():
            return int(np.flatnonzero(mask)[0])
    return 0


def case_study_figure(trace: pd.DataFrame, title: str = "", n_beams: int = 8):
    """Per-token probabilities of the top beams: one row per beam, one group of three bars per level
    (p_LLM, p_G, p̂; p_G hatched-out where the prefix was off the FSM), the hit beam's label in bold."""
    from matplotlib.figure import Figure

    ranks = sorted(trace["rank"].unique())[:n_beams]
    n_levels = int(trace["level"].max()) if len(trace) else 1
    fig = Figure(figsize=(2.0 + 1.5 * n_levels, 0.55 * max(len(ranks), 1) + 1.3))
    ax = fig.subplots()
    width = 0.27
    colours = {"p_LLM": "#4c72b0", "p_G": "#dd8452", "p_hat": "#55a868"}
    for y, r in enumerate(ranks):
        d = trace[trace["rank"] == r].sort_values("level")
        for j, key in enumerate(colours):
            x = d["level"].to_numpy() - 1 + (j - 1) * width
            v = np.nan_to_num(d[key].to_numpy(), nan=0.0)
            ax.bar(
                x,
                v * 0.8,
                bottom=y - 0.4,
                width=width,
                color=colours[key],
                label=key.replace("p_hat", "p̂") if y == 0 else None,
            )
        for lvl, tok, on in zip(d["level"], d["token"], d["on FSM"], strict=False):
            ax.text(
                lvl - 1,
                y + 0.42,
                tok + ("" if on else " (off)"),
                ha="center",
                va="bottom",
                fontsize=6,
                color="black" if on else "#999999",
            )
    labels = []
    for r in ranks:
        d = trace[trace["rank"] == r].iloc[0]
        labels.append(f"#{r} {str(d['title'])[:28]}" + (" ✓ HIT" if d["hit"] else ""))
    ax.set_yticks(range(len(ranks)), labels, fontsize=7)
    for tick, r in zip(ax.get_yticklabels(), ranks, strict=False):
        if trace[trace["rank"] == r]["hit"].iloc[0]:
            tick.set_fontweight("bold")
            tick.set_color("#1a7f37")
    ax.set_xticks(range(n_levels), [f"level {i + 1}" for i in range(n_levels)])
    ax.set_ylim(-0.6, len(ranks) - 0.1 + 0.5)
    ax.invert_yaxis()
    ax.legend(frameon=False, fontsize=7, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    ax.set_title(title, fontsize=10, pad=18)
    fig.tight_layout()
    return fig


def probability_steps(result: DecodeResult, row: int) -> dict[str, np.ndarray]:
    """``{"p_LLM", "p_G", "p_hat", "on"}`` of user ``row`` as ``[K, L]`` arrays (for widgets and tests)."""
    tr = result.trace
    if tr is None:
        raise ValueError("probability_steps needs a traced decode")
    return {
        "p_LLM": tr.p_llm[row].numpy(),
        "p_G": tr.p_g[row].numpy(),
        "p_hat": tr.p_hat[row].numpy(),
        "on": tr.on[row].numpy(),
    }
