"""The FSM viewer's data: one user's rankable FSM as a code-prefix tree, and the state each beam is in.

The numbers come from :class:`~agrec.decode.fsm.RankableFSM` itself (``distribution``), so the viewer shows
exactly what the decoder mixes in, not a re-derivation of it.
"""

from __future__ import annotations

from typing import Literal, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from agrec.decode.fsm import RankableFSM
from agrec.decode.trie import ItemTrie


def _label(labels: Mapping[int, str] | None, tok: int) -> str:
    return labels.get(int(tok), str(int(tok))) if labels is not None else str(int(tok))


def build_user_fsm(
    trie: ItemTrie,
    top_items: Sequence[int] | np.ndarray | torch.Tensor,
    top_scores: Sequence[float] | np.ndarray | torch.Tensor,
    *,
    tau: float = 1.0,
    agg: Literal["sum", "max"] = "sum",
    state: Literal["prefix", "last_token"] = "prefix",
    floor: float = 1e-5,
) -> RankableFSM:
    """The FSM of one user from their top-n items ``[n]`` and scores ``[n]`` (-1 pads)."""
    return RankableFSM.build(
        trie,
        torch.as_tensor(np.asarray(top_items)).view(1, -1).long(),
        torch.as_tensor(np.asarray(top_scores, dtype=np.float32)).view(1, -1),
        tau=tau,
        agg=agg,
        state=state,
        floor=floor,
    )


def fsm_tree(
    fsm: RankableFSM,
    titles: Sequence[str] | None = None,
    labels: Mapping[int, str] | None = None,
    user: int = 0,
    top_items: Sequence[int] | np.ndarray | None = None,
) -> pd.DataFrame:
    """The prefix tree of a user's FSM, one row per node (a prefix of a top-n item), parents before children.

    Columns: ``prefix`` (tuple of token ids), ``depth`` (1..L), ``token`` (label of the last token),
    ``parent`` (the parent's prefix tuple, () for the root), ``p_G`` (the token's probability in the parent
    state, as the decoder uses it), ``weight`` (the summed item weights w under the node), ``items`` (number
    of top-n items under it), ``item`` / ``title`` (for a complete item, else -1 / "").
    """
    f = fsm.select([user])
    toks = f.item_tokens[0].cpu().numpy()  # [n, L]
    valid = f.valid[0].cpu().numpy()
    w = f.weight[0].cpu().numpy()
    L = toks.shape[1]
    nodes: dict[tuple[int, ...], dict] = {}
    dists: dict[tuple[int, ...], dict[int, float]] = {}
    for i in np.flatnonzero(valid):
        for t in range(1, L + 1):
            prefix = tuple(int(x) for x in toks[i, :t])
            parent = prefix[:-1]
            if parent not in dists:
                dists[parent] = f.distribution(0, list(parent)) or {}
            node = nodes.setdefault(
                prefix,
                {
                    "prefix": prefix,
                    "depth": t,
                    "token": _label(labels, prefix[-1]),
                    "parent": parent,
                    "p_G": dists[parent].get(prefix[-1], float("nan")),
                    "weight": 0.0,
                    "items": 0,
                    "item": -1,
                    "title": "",
                },
            )
            node["weight"] += float(w[i])
            node["items"] += 1
            if t == L:
                item = int(top_items[int(i)]) if top_items is not None else int(i)
                node["item"] = item
                node["title"] = titles[item] if titles is not None and item >= 0 else ""
    rows = sorted(nodes.values(), key=lambda r: (r["depth"], r["prefix"]))
    return pd.DataFrame(rows, columns=["prefix", "depth", "token", "parent", "p_G", "weight", "items", "item", "title"])


def beam_states(tree: pd.DataFrame, beam_tokens: np.ndarray, labels: Mapping[int, str] | None = None) -> pd.DataFrame:
    """Where each beam is in the FSM: ``[K, L]`` token ids of the beams (rows of a trace) -> one row per
    beam with ``on_levels`` (how many leading tokens follow a top-n prefix), ``state`` (the deepest FSM
    state it reached, as code labels) and ``status`` ("a top-n item", "left at level t", "never on")."""
    prefixes = set(tree["prefix"])
    out = []
    for b, toks in enumerate(np.asarray(beam_tokens)):
        n_on = 0
        while n_on < len(toks) and tuple(int(x) for x in toks[: n_on + 1]) in prefixes:
            n_on += 1
        state = "".join(_label(labels, t) for t in toks[:n_on]) or "root"
        status = (
            "a top-n item"
            if n_on == len(toks)
            else "never on (left at level 1)"
            if n_on == 0
            else f"left at level {n_on + 1}"
        )
        out.append({"beam": b + 1, "on_levels": n_on, "state": state, "status": status})
    return pd.DataFrame(out)


def fsm_tree_figure(tree: pd.DataFrame, states: pd.DataFrame | None = None, title: str = ""):
    """Static drawing of the tree (depth left to right, leaves top to bottom), edges labelled with p_G,
    leaves with the item title and weight; the number of beams ending in each node is shown in brackets."""
    from matplotlib.figure import Figure

    leaves = tree[tree["depth"] == tree["depth"].max()] if len(tree) else tree
    y: dict[tuple, float] = {p: float(j) for j, p in enumerate(leaves["prefix"])}
    for d in range(int(tree["depth"].max()) - 1 if len(tree) else 0, 0, -1):
        for p in tree[tree["depth"] == d]["prefix"]:
            kids = [y[c] for c in tree[tree["parent"] == p]["prefix"] if c in y]
            y[p] = float(np.mean(kids)) if kids else 0.0
    y[()] = float(np.mean([y[p] for p in tree[tree["depth"] == 1]["prefix"]])) if len(tree) else 0.0
    in_node: dict[str, int] = {}
    if states is not None:
        for s in states["state"]:
            in_node[s] = in_node.get(s, 0) + 1
    n_leaves = max(len(leaves), 1)
    depth = int(tree["depth"].max()) if len(tree) else 1
    fig = Figure(figsize=(3.0 + 2.2 * depth, 0.9 + 0.38 * n_leaves))
    ax = fig.subplots()
    path_label: dict[tuple, str] = {(): ""}
    for r in tree.itertuples():
        path_label[r.prefix] = path_label[r.parent] + r.token
        x0, x1 = r.depth - 1, r.depth
        lw = 0.6 + 4.0 * float(r.weight)
        ax.plot([x0, x1], [y[r.parent], y[r.prefix]], color="#4c72b0", lw=lw, alpha=0.8)
        ax.text(
            (x0 + x1) / 2,
            (y[r.parent] + y[r.prefix]) / 2,
            f"{r.token} p={r.p_G:.2f}",
            fontsize=6,
            ha="center",
            va="bottom",
            color="#333333",
        )
        n_here = in_node.get(path_label[r.prefix], 0)
        if r.item >= 0:
            ax.text(
                x1 + 0.05,
                y[r.prefix],
                f"{str(r.title)[:34]}  w={r.weight:.2f}" + (f"  [{n_here} beam]" if n_here else ""),
                fontsize=7,
                va="center",
            )
        elif n_here:
            ax.text(x1, y[r.prefix] - 0.3, f"[{n_here} beam(s) left here]", fontsize=6, color="#c44e52", ha="center")
    ax.plot([0], [y[()]], "ko", ms=4)
    if in_node.get("root"):
        ax.text(0, y[()] - 0.35, f"[{in_node['root']} beam(s) never on]", fontsize=6, color="#c44e52", ha="center")
    ax.set_xlim(-0.2, depth + 1.6)
    ax.set_ylim(n_leaves - 0.3, -0.7)
    ax.set_xticks(range(depth + 1), ["root"] + [f"level {d}" for d in range(1, depth + 1)])
    ax.set_yticks([])
    for s in ("top", "right", "left"):
        ax.spines[s].set_visible(False)
    ax.set_title(title or "The user's rankable FSM (edge width = weight under it)", fontsize=10)
    fig.tight_layout()
    return fig
