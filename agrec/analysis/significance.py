"""Paired, per-user significance tests of AGRec against each row of the decode table (scipy.stats).

Every row of the decode stage ranks the same users on the same split, so two rows are compared user
by user (paired), never as two independent means. Per user and cut-off K, a row's outcome is its hit
(HR@K, 0/1) and its gain (NDCG@K, 1/log2(rank+1) or 0); the difference d_u = reference − other.

One run (one seed):

- **HR@K: exact McNemar test.** Only discordant users carry information: b = users hit by the reference
  only, c = users hit by the other row only. Under H0 each discordant user is equally likely to fall
  either way, so b ~ Binomial(b + c, 1/2); the two-sided exact p-value is ``scipy.stats.binomtest``'s
  (b=8, c=2 -> 2·P(X <= 2 | 10, 1/2) = 0.109375).
- **NDCG@K: Wilcoxon signed-rank test** on the per-user differences (``scipy.stats.wilcoxon``, zero
  differences dropped — the "wilcox" convention, they carry no sign — exact null distribution for small
  samples without ties, the normal approximation otherwise), and a **paired bootstrap 95 % CI of the
  mean difference** (``scipy.stats.bootstrap``'s BCa interval with ``paired=True``: users are resampled
  with both rows' values together; seeded, so reproducible; :func:`bootstrap_ci` computes scipy's interval
  with a closed-form jackknife).

Several seeds (the same users, one run per seed): the unit of replication is still the *user*. A
user's outcomes in different seeds are not independent — a user that AGRec hits and the LM misses in
one seed tends to be so in the next — so treating users × seeds as independent strata (summing the
discordant pairs over seeds, the Cochran–Mantel–Haenszel / exact conditional test on those strata) or
combining the per-seed p-values with Fisher's or Stouffer's method (``scipy.stats.combine_pvalues``,
which assumes independent p-values) counts the same users S times and is anti-conservative: if every
user's discordance repeated in all S seeds, the summed McNemar statistic would grow by a factor S with
no new evidence. Instead each user's difference is first averaged over the seeds,
d̄_u = mean_s d_{u,s}, and the tests run over users on d̄:

- **HR@K: exact sign test** on d̄ (``binomtest`` of #{d̄_u > 0} among #{d̄_u ≠ 0}); with one seed this
  *is* the exact McNemar test above;
- **NDCG@K: Wilcoxon signed-rank** on d̄ and the paired bootstrap CI of mean(d̄) over users.

Both are valid under the null that, for every user, the two rows' outcomes are exchangeable (jointly
over the seeds); they answer "does AGRec beat the other row on users like these, averaged over
training seeds". The spread *between* seeds is reported beside them (sd over seeds, and in how many
seeds the reference's mean beats the other row's).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence, cast

import numpy as np
from scipy import special, stats

from agrec.errors import AgrecError
from agrec.metrics import target_ranks

if TYPE_CHECKING:
    import pandas as pd

    from agrec.decode.stage import DecodeReport


def user_gains(items: np.ndarray, targets: np.ndarray, ks: Iterable[int] = (5, 10)) -> dict[str, np.ndarray]:
    """Per-user outcomes of one ranking: ``{"HR@K": hits [U], "NDCG@K": gains [U]}`` (float64).

    Args:
        items: ``[U, L]`` item ids best first (negative entries are padding).
        targets: ``[U]`` the held-out item per user.

    Their means are exactly :func:`agrec.metrics.evaluate_rankings`'s numbers.
    """
    return rank_gains(target_ranks(np.asarray(items), np.asarray(targets)), ks)


def rank_gains(ranks: np.ndarray, ks: Iterable[int] = (5, 10)) -> dict[str, np.ndarray]:
    """:func:`user_gains` from the target's 1-based rank per user (``[U]``, 0 = not in the list)."""
    ranks = np.asarray(ranks)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        hit = (ranks >= 1) & (ranks <= k)
        gain = np.zeros(len(ranks), dtype=np.float64)
        gain[hit] = 1.0 / np.log2(ranks[hit] + 1.0)
        out[f"HR@{k}"] = hit.astype(np.float64)
        out[f"NDCG@{k}"] = gain
    return out


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts ``b`` (reference only) and ``c``
    (other only): ``binomtest(b, b + c, 0.5)``; 1.0 when there is no discordant pair."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    return 1.0 if b + c == 0 else float(stats.binomtest(int(b), int(b + c), 0.5).pvalue)


def wilcoxon_p(d: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of the paired differences ``d [U]`` (zeros dropped);
    1.0 when every difference is zero (nothing to rank)."""
    d = np.asarray(d, dtype=np.float64)
    if not np.any(d != 0):
        return 1.0
    return float(stats.wilcoxon(d, zero_method="wilcox").pvalue)


def bootstrap_ci(
    x: np.ndarray, y: np.ndarray, confidence: float = 0.95, n_resamples: int = 9999, seed: int = 0
) -> tuple[float, float]:
    """Paired bootstrap CI (BCa) of mean(x − y): users are resampled with their two values together.

    Args:
        x: ``[U]`` per-user values of the first row.
        y: ``[U]`` per-user values of the second row, aligned with ``x`` by user.
        seed: seeds the resampling, so the interval is reproducible.

    The interval is ``scipy.stats.bootstrap((x, y), mean(x - y), paired=True, method="BCa",
    rng=np.random.default_rng(seed))``'s — the same resamples drawn from the same stream, the same bias
    correction and percentiles (tests/analysis/test_significance.py checks the two agree) — computed
    without scipy's generic jackknife: for a mean the leave-one-out means are known in closed form
    (``θ̂ − θ̂_(i) ∝ d_i − d̄``), where scipy builds them as ``[U, U − 1]`` resamples (O(U²); 17 s of a
    test's 17 s at Instruments' 24,772 users). A degenerate sample (every difference equal, e.g. two
    identical rows) has the point interval.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be aligned 1-d arrays, got shapes {x.shape} and {y.shape}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    d = x - y
    n = len(d)
    if n == 0:
        raise ValueError("x and y are empty")
    if np.all(d == d[0]):
        return float(d[0]), float(d[0])
    rng = np.random.default_rng(seed)
    # scipy's draws: each batch is rng.integers(0, U, (batch, U)) over the user indices. Batches of ~4M
    # values keep memory bounded ([n_resamples, U] at once would be GBs); the stream is the same.
    batch = max(1, min(n_resamples, 4_000_000 // n))
    theta_b = np.empty(n_resamples)
    for k in range(0, n_resamples, batch):
        i = rng.integers(0, n, (min(batch, n_resamples - k), n))
        theta_b[k : k + len(i)] = np.mean(d[i], axis=-1)  # d[i] == x[i] - y[i] element for element
    theta = np.mean(x - y)
    # bias correction z0: the bootstrap distribution's mid-rank percentile of the estimate
    z0 = special.ndtri(((theta_b < theta).sum() + (theta_b <= theta).sum()) / (2.0 * n_resamples))
    # acceleration from the jackknife; for the mean, (n - 1)(mean of θ_(i) − θ_(i)) = d_i − d̄
    u = d - d.mean()
    a = np.sum(u**3) / (6.0 * np.sum(u**2) ** 1.5)
    z_alpha = special.ndtri((1.0 - confidence) / 2.0)
    bounds = []
    for z in (z_alpha, -z_alpha):
        q = special.ndtr(z0 + (z0 + z) / (1.0 - a * (z0 + z)))
        if not np.isfinite(q):
            raise AgrecError(
                f"bootstrap CI: the BCa percentile is not finite (z0={z0}, a={a}); the "
                f"bootstrap distribution is degenerate for these {n} users"
            )
        bounds.append(float(np.percentile(theta_b, q * 100.0)))
    return bounds[0], bounds[1]


@dataclass
class PairedTest:
    """The reference row against one other row on one metric, over ``n_seeds`` seed(s).

    ``n_better`` / ``n_worse``: users whose (seed-averaged) outcome is higher / lower with the reference
    (for HR with one seed: McNemar's b and c). ``test``: the test behind ``p_value``.
    """

    metric: str
    n_users: int
    n_seeds: int
    reference_mean: float
    other_mean: float
    mean_diff: float
    n_better: int
    n_worse: int
    test: str
    p_value: float
    ci_low: float | None = None
    ci_high: float | None = None


def paired_test(
    ref: np.ndarray, other: np.ndarray, metric: str, confidence: float = 0.95, n_resamples: int = 9999, seed: int = 0
) -> PairedTest:
    """Paired test of the reference against another row on ``metric`` (see the module docstring).

    Args:
        ref: per-user outcomes of the reference row, ``[U]`` (one seed) or ``[S, U]`` (S seeds, same users in
            the same order); hits (0/1) for ``HR@K``, gains for ``NDCG@K``.
        other: the other row's outcomes, shaped and ordered as ``ref``.
        metric: ``"HR@K"`` (exact McNemar / sign test) or ``"NDCG@K"`` (Wilcoxon + bootstrap CI).
    """
    ref, other = np.atleast_2d(np.asarray(ref, dtype=np.float64)), np.atleast_2d(np.asarray(other, dtype=np.float64))
    if ref.shape != other.shape:
        raise ValueError(f"{metric}: per-user outcomes are not aligned: {ref.shape} vs {other.shape}")
    n_seeds, n_users = ref.shape
    r, o = ref.mean(axis=0), other.mean(axis=0)  # seeds averaged per user: the user is the unit
    d = r - o
    better, worse = int((d > 0).sum()), int((d < 0).sum())
    kind = metric.partition("@")[0]
    lo = hi = None
    if kind == "HR":
        if not np.isin(ref, (0.0, 1.0)).all() or not np.isin(other, (0.0, 1.0)).all():
            raise ValueError(f"{metric}: hits must be 0 or 1")
        test = "McNemar exact" if n_seeds == 1 else "sign test (exact) on seed-averaged users"
        p = mcnemar_exact(better, worse)
    elif kind == "NDCG":
        test = "Wilcoxon signed-rank" + ("" if n_seeds == 1 else " on seed-averaged users")
        p = wilcoxon_p(d)
        lo, hi = bootstrap_ci(r, o, confidence=confidence, n_resamples=n_resamples, seed=seed)
    else:
        raise ValueError(f"unknown metric {metric!r}: expected HR@K or NDCG@K")
    return PairedTest(
        metric=metric,
        n_users=n_users,
        n_seeds=n_seeds,
        reference_mean=float(r.mean()),
        other_mean=float(o.mean()),
        mean_diff=float(d.mean()),
        n_better=better,
        n_worse=worse,
        test=test,
        p_value=p,
        ci_low=lo,
        ci_high=hi,
    )


def rows_ranks(
    folder: Path, rows: Sequence[str], target: str = "test"
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], int]:
    """Each row's 1-based rank of every user's ``target`` item (0 = not in its list), read from the decode
    stage's rankings in ``folder``.

    Returns ``(users [U], targets [U], {row: ranks [U]}, K)``, ``K`` the longest list's length; raises
    :class:`AgrecError` when two rows were not ranked for the same users and targets (they could not be paired).
    """
    from agrec.decode.stage import load_rankings

    users = targets = None
    out: dict[str, np.ndarray] = {}
    length = 0
    for row in rows:
        rk = load_rankings(folder, row, target)
        if users is None:
            users, targets = rk["users"], rk["targets"]
        elif not (np.array_equal(rk["users"], users) and np.array_equal(rk["targets"], cast(np.ndarray, targets))):
            raise AgrecError(
                f"{folder}: rows {rows[0]!r} and {row!r} were ranked for different users or "
                f"targets on {target}; they cannot be compared per user"
            )
        out[row] = target_ranks(rk["items"], rk["targets"])
        length = max(length, int(rk["items"].shape[1]))
    if users is None or targets is None:
        raise AgrecError(f"{folder}: no rows asked for; nothing to pair")
    return users, targets, out, length


def rows_gains(
    folder: Path, rows: Sequence[str], target: str = "test", ks: Iterable[int] = (5, 10)
) -> tuple[np.ndarray, np.ndarray, dict[str, dict[str, np.ndarray]]]:
    """Per-user outcomes of ``rows`` of one decode run (:func:`rank_gains` of :func:`rows_ranks`): ``(users [U],
    targets [U], {row: {metric: [U]}})``."""
    users, targets, ranks, _ = rows_ranks(folder, rows, target)
    return users, targets, {row: rank_gains(r, ks) for row, r in ranks.items()}


def decode_significance(
    dec: "DecodeReport",
    reference: str,
    target: str = "test",
    ks: Iterable[int] = (5, 10),
    n_resamples: int = 9999,
    seed: int = 0,
    against: Sequence[str] | None = None,
) -> "pd.DataFrame":
    """Paired tests of ``reference`` against every other row of one decode run on ``target`` (or only the
    rows named in ``against``).

    One line per (row, metric): the means, their difference, users better/worse with the reference,
    the test, its p-value and (NDCG) the bootstrap CI of the mean difference.
    """
    import pandas as pd

    ks = list(ks)
    names = [r["name"] for r in dec.rows]
    for name in [reference, *(against or [])]:
        if name not in names:
            raise AgrecError(f"{dec.folder}: no row {name!r} in the decode table (rows: {names})")
    if against is not None:
        names = [reference, *[n for n in against if n != reference]]
    _, _, gains = rows_gains(dec.folder, names, target, ks)
    recs = []
    for name in names:
        if name == reference:
            continue
        for metric in gains[reference]:
            t = paired_test(gains[reference][metric], gains[name][metric], metric, n_resamples=n_resamples, seed=seed)
            recs.append({"method": name, **asdict(t)})
    return pd.DataFrame(recs)


def parts_significance(
    dec: "DecodeReport",
    parts: dict[str, Sequence[str]],
    target: str = "test",
    ks: Iterable[int] = (5, 10),
    n_resamples: int = 9999,
    seed: int = 0,
    computed: dict[str, "pd.DataFrame"] | None = None,
) -> "pd.DataFrame":
    """Paired tests of each AGRec row against its parts: ``parts`` maps a row (the main AGRec row, the other
    scorers' ``AGRec (<s>)`` rows, the decode variants) to the rows it combines (the LM alone and its scorer
    alone); :func:`decode_significance` per row, with a ``row`` column.

    ``computed``: frames :func:`decode_significance` already returned for some of these rows with the same
    ``target``, ``ks``, ``n_resamples`` and ``seed`` (e.g. the main row against every row); their lines are
    reused instead of recomputing the bootstrap."""
    import pandas as pd

    computed = computed or {}

    def tests(r: str, against: Sequence[str]) -> "pd.DataFrame":
        if r in computed:
            done = computed[r]
            return pd.concat([done[done["method"] == a] for a in against], ignore_index=True)
        return decode_significance(dec, r, target, ks, n_resamples=n_resamples, seed=seed, against=list(against))

    frames = [tests(r, against).assign(row=r) for r, against in parts.items()]
    df = pd.concat(frames, ignore_index=True)
    return df[["row", *[c for c in df.columns if c != "row"]]]


def p_values_by_row(frame: "pd.DataFrame") -> dict[str, dict[str, dict[str, float]]]:
    """``{row: {compared row: {metric: p}}}`` of a :func:`parts_significance` frame (what the decode record keeps)."""
    return {
        row: {m: g.set_index("metric")["p_value"].to_dict() for m, g in f.groupby("method", sort=False)}
        for row, f in frame.groupby("row", sort=False)
    }
