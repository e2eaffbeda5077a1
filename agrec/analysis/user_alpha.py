"""Does a per-user signal choose the mixing weight α better than one global α?

The decode stage chooses one α per AGRec row on validation. A per-user signal could do better if users differ
in how much the graph should steer: users with short histories, users the LM is unsure about, users on whom the
LM and the scorer disagree. This module measures that from the rankings the decode stage already wrote, without
decoding anything again:

1. A signal gives every user one number (:data:`SIGNALS`), computed the same way for validation and test users.
2. The validation users are split into ``n_buckets`` buckets at the signal's validation quantiles (equal-sized
   when the signal has many distinct values; a signal with few, such as the top-10 overlap, gives uneven ones);
   the test users are put into buckets with the same edges.
3. Each bucket takes the α of the row's grid with the best mean validation gain of its own users (grid order
   breaks ties, as :func:`agrec.decode.stage.choose` does).
4. Each test user is ranked by the test ranking of their bucket's α, and the result is compared user by user
   with the row's one global α (the decode stage's choice): paired Wilcoxon on NDCG@K, exact McNemar on HR@K
   (:mod:`agrec.analysis.significance`).

Selection sees validation only; test is read once, for the comparison. Only the α whose test rankings the
decode stage wrote can be used: every grid point under ``evaluation.test_curve: true``; otherwise the chosen α,
α = 1 and the whole grid of the row that became "AGRec (selected)" (decoded on test for its selection regret).
Run it with ``benchmarks/user_alpha.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from agrec.analysis.significance import paired_test, user_gains
from agrec.decode.variants import slug
from agrec.errors import AgrecError
from agrec.scorers import agrec_row

LM_ROW = "w/o Graph"  # α = 0: the LM alone, the same rankings for every scorer


@dataclass(frozen=True)
class Rankings:
    """One row's rankings on one target, as :func:`agrec.decode.stage.load_rankings` returns them."""

    users: np.ndarray  # [U] user indices
    targets: np.ndarray  # [U]
    items: np.ndarray  # [U, L] best first
    scores: np.ndarray  # [U, L]

    def aligned(self, users: np.ndarray | None) -> Rankings:
        """The same rankings in the order of ``users`` (every one of them must be ranked here; None: as stored)."""
        if users is None or np.array_equal(self.users, users):
            return self
        pos = {int(u): i for i, u in enumerate(self.users)}
        missing = [int(u) for u in users if int(u) not in pos]
        if missing:
            raise AgrecError(f"{len(missing)} user(s) have no ranking in this row (e.g. user {missing[0]})")
        idx = np.array([pos[int(u)] for u in users])
        return Rankings(self.users[idx], self.targets[idx], self.items[idx], self.scores[idx])


@dataclass(frozen=True)
class SignalInputs:
    """What the signals are computed from, for one target (validation or test), users in one order."""

    history_len: np.ndarray  # [U] items the user had seen before the target
    lm: Rankings  # α = 0
    scorer: Rankings  # α = 1: the beam search steered by the scorer alone (its scores are beam scores)


def _top_score(r: Rankings) -> np.ndarray:
    return r.scores[:, 0].astype(np.float64)


def _agreement(x: SignalInputs, k: int = 10) -> np.ndarray:
    a, b = x.lm.items[:, :k], x.scorer.items[:, :k]
    return np.array(
        [len(set(p[p >= 0].tolist()) & set(q[q >= 0].tolist())) for p, q in zip(a, b, strict=True)], dtype=np.float64
    )


# name -> per-user value. The LM's and the scorer's confidence are the score of their first item (the best beam's
# score at α = 0 and at α = 1), agreement the overlap of their top-10 lists.
SIGNALS: dict[str, Callable[[SignalInputs], np.ndarray]] = {
    "history length": lambda x: x.history_len.astype(np.float64),
    "LM confidence": lambda x: _top_score(x.lm),
    "scorer confidence": lambda x: _top_score(x.scorer),
    "LM-scorer agreement@10": _agreement,
}


def bucket_edges(values: np.ndarray, n_buckets: int) -> np.ndarray:
    """Interior edges ``[<= n_buckets - 1]`` that split ``values [U]`` into ``n_buckets`` buckets of (nearly) equal
    size at its quantiles; repeated quantiles collapse (a signal with few distinct values gets fewer buckets)."""
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be >= 1, got {n_buckets}")
    qs = np.quantile(np.asarray(values, dtype=np.float64), np.arange(1, n_buckets) / n_buckets)
    return np.unique(qs)


def bucket_of(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bucket index ``[U]`` of each value: bucket b holds ``edges[b-1] < v <= edges[b]`` (bucket 0: v <= edges[0])."""
    return np.searchsorted(edges, np.asarray(values, dtype=np.float64), side="left")


def per_bucket_alpha(
    gains: dict[float, np.ndarray], buckets: np.ndarray, n_buckets: int, fallback: float
) -> list[float]:
    """For each bucket, the α (key of ``gains``, in grid order) with the best mean gain of the bucket's users;
    ``fallback`` for a bucket without users. ``gains[α]`` is ``[U]``, aligned with ``buckets [U]``."""
    alphas = list(gains)
    out = []
    for b in range(n_buckets):
        m = buckets == b
        if not m.any():
            out.append(fallback)
            continue
        means = [float(gains[a][m].mean()) for a in alphas]
        out.append(alphas[int(np.argmax(means))])
    return out


def mixed(gains: dict[float, np.ndarray], buckets: np.ndarray, choice: Sequence[float]) -> np.ndarray:
    """Per-user outcome ``[U]`` when every user takes their bucket's α: ``gains[choice[bucket[u]]][u]``."""
    out = np.empty(len(buckets), dtype=np.float64)
    for b, a in enumerate(choice):
        m = buckets == b
        out[m] = gains[a][m]
    return out


def signal_study(
    grid: dict[float, dict[str, Rankings]],
    inputs: dict[str, SignalInputs],
    global_alpha: float,
    metric: str = "NDCG@10",
    n_buckets: int = 3,
    signals: Sequence[str] = tuple(SIGNALS),
) -> pd.DataFrame:
    """One row per signal: the α each bucket chose on validation, and the test ``metric`` (and the paired test
    against the global α, on ``metric`` and on the HR at the same cut-off).

    Args:
        grid: ``{α: {"valid": Rankings, "test": Rankings}}``, one AGRec row's grid; users in the order of
            ``inputs[target]``.
        inputs: ``{"valid": SignalInputs, "test": SignalInputs}``.
        global_alpha: the row's one α, chosen on validation by the decode stage (a key of ``grid``).
    """
    if global_alpha not in grid:
        raise ValueError(f"the global α {global_alpha:g} has no rankings in the grid {sorted(grid)}")
    k = metric.partition("@")[2]
    outcome = {
        t: {a: user_gains(grid[a][t].items, grid[a][t].targets, (int(k),)) for a in grid} for t in ("valid", "test")
    }
    rows = []
    for name in signals:
        values = {t: SIGNALS[name](inputs[t]) for t in ("valid", "test")}
        edges = bucket_edges(values["valid"], n_buckets)
        nb = len(edges) + 1
        buckets = {t: bucket_of(values[t], edges) for t in values}
        choice = per_bucket_alpha(
            {a: g[metric] for a, g in outcome["valid"].items()}, buckets["valid"], nb, global_alpha
        )
        row: dict[str, object] = {
            "signal": name,
            "edges": [round(float(e), 4) for e in edges],
            "alpha per bucket": choice,
            "test users per bucket": [int((buckets["test"] == b).sum()) for b in range(nb)],
        }
        for m in dict.fromkeys((metric, f"NDCG@{k}", f"HR@{k}")):
            per = {a: g[m] for a, g in outcome["test"].items()}
            ours, base = mixed(per, buckets["test"], choice), per[global_alpha]
            t = paired_test(ours, base, m)
            row[f"global α {m}"] = t.other_mean
            row[f"per-bucket α {m}"] = t.reference_mean
            row[f"p {m}"] = t.p_value
        rows.append(row)
    return pd.DataFrame(rows)


def grid_row_name(scorer: str, main: str, alpha: float, tau: float) -> str:
    """The decode stage's row name of a grid point (agrec.decode.stage.plan_curves): ``w/o Graph`` at α = 0, the
    short ``α=0.2 τ=1`` for the main scorer, ``AGRec (sasrec) α=0.2 τ=1`` for the others."""
    if alpha == 0:
        return LM_ROW
    prefix = "" if scorer == main else f"{agrec_row(scorer)} "
    return f"{prefix}α={alpha:g} τ={tau:g}"


def load_grid(
    folder: Path, record: dict, scorer: str, main: str, users: dict[str, np.ndarray]
) -> tuple[dict[float, dict[str, Rankings]], float, list[float]]:
    """The grid of AGRec (``scorer``) at its chosen τ from a decode folder and its ``results.json`` ``record``
    (``main``: the profile's ``evaluation.scorer``): ``({α: {"valid", "test"}}, global α, α left out for lack of
    test rankings)``; users aligned to ``users``."""
    row = next((r for r in record["rows"] if r["name"] == agrec_row(scorer)), None)
    if row is None:
        raise AgrecError(f"{folder}: no row {agrec_row(scorer)!r} in results.json")
    alpha, tau = float(row["settings"]["alpha"]), float(row["settings"].get("tau", 1.0))
    curve = record["curve"] if scorer == main else record["scorer_curves"][scorer]
    grid, left_out = {}, []
    for p in curve:
        if float(p["tau"]) != tau:
            continue
        a = float(p["alpha"])
        name = slug(grid_row_name(scorer, main, a, tau))
        if not (folder / "rankings" / f"{name}__test.npz").is_file():
            left_out.append(a)
            continue
        grid[a] = {t: _load(folder, name, t, users[t]) for t in ("valid", "test")}
    return grid, alpha, left_out


def _load(folder: Path, row: str, target: str, users: np.ndarray | None) -> Rankings:
    from agrec.decode.stage import load_rankings  # the decode stage imports torch; this module needs only numpy

    return Rankings(**load_rankings(folder, row, target)).aligned(users)


def run_study(
    folder: Path,
    train_lengths: np.ndarray,
    main: str,
    scorers: Sequence[str],
    metric: str = "NDCG@10",
    n_buckets: int = 3,
) -> dict[str, dict]:
    """:func:`signal_study` for every AGRec row of ``scorers`` in the decode stage folder ``folder``.

    Args:
        train_lengths: ``[n_users]`` training items per user (the split's ``train``): a validation target follows
            that many items, a test target one more.
        main: the profile's ``evaluation.scorer``.

    Returns ``{scorer: {"global_alpha", "grid", "left_out", "table": [rows]}}``; a scorer whose grid has test
    rankings at fewer than two α is reported with its reason and no table.
    """
    from agrec.decode.stage import read_results  # the decode stage imports torch; this module needs only numpy

    record = read_results(folder)  # checked: format, rows, metrics
    lm = {t: _load(folder, slug(LM_ROW), t, None) for t in ("valid", "test")}
    users = {t: lm[t].users for t in lm}
    lengths = np.asarray(train_lengths)
    out: dict[str, dict] = {}
    for scorer in scorers:
        grid, alpha, left_out = load_grid(folder, record, scorer, main, users)
        entry: dict = {"global_alpha": alpha, "grid": sorted(grid), "left_out": left_out}
        if len(grid) < 2 or alpha not in grid or 1.0 not in grid:
            entry["skipped"] = (
                "the decode stage wrote test rankings for too few α of this grid (needs α = 1 and the chosen α)"
            )
            out[scorer] = entry
            continue
        inputs = {
            t: SignalInputs(lengths[users[t]] + (1 if t == "test" else 0), lm[t], grid[1.0][t])
            for t in ("valid", "test")
        }
        table = signal_study(grid, inputs, alpha, metric, n_buckets)
        entry["table"] = table.to_dict(orient="records")
        out[scorer] = entry
    return out
