"""Quality measures of a code table: collisions, code usage, semantic coherence, shared prefixes.

- Utilisation of a level = distinct codes used / codebook size; perplexity = exp(entropy of the code
  frequencies), i.e. the number of equally used codes that would give the same entropy (= codebook
  size for perfectly balanced use, 1 when one code takes every item).
- First-code cosine ratio = mean text-embedding cosine of item pairs that share their first code,
  divided by the mean cosine of random item pairs (> 1: the first code groups similar texts).
- Genre purity of the first level = Σ over first codes of (items carrying the code's most common
  genre) / N, for multi-genre items; compared with the same measure after randomly permuting the
  codes among items (same cluster sizes), so the baseline is what chance gives.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np
import pandas as pd

from agrec.semantic_ids.codes import LEVEL_LETTERS, CodeTable


def level_usage(codes: np.ndarray, codebook_sizes: Sequence[int]) -> pd.DataFrame:
    """Per level: ``level`` (its token letter), ``codebook_size, used, utilisation, perplexity, max_share``;
    ``codes`` is ``[N, L]``."""
    rows = []
    for lvl, k in enumerate(codebook_sizes):
        counts = np.bincount(codes[:, lvl], minlength=k).astype(np.float64)
        p = counts[counts > 0] / counts.sum()
        rows.append(
            {
                "level": LEVEL_LETTERS[lvl],
                "codebook_size": int(k),
                "used": int((counts > 0).sum()),
                "utilisation": float((counts > 0).sum() / k),
                "perplexity": float(np.exp(-(p * np.log(p)).sum())),
                "max_share": float(p.max()),
            }
        )
    return pd.DataFrame(rows)


def collision_stats(codes: np.ndarray) -> dict[str, float | int]:
    """``{"n_items", "n_unique", "collision_rate", "n_colliding_items", "max_group"}`` for ``codes`` ``[N, L]``.

    ``collision_rate = 1 - unique / N`` (the fraction of items that would be indistinguishable if the
    first item of each group kept the code); ``n_colliding_items`` counts every item of a group > 1.
    """
    n = len(codes)
    _, inv, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return {
        "n_items": n,
        "n_unique": int(len(counts)),
        "collision_rate": float(1 - len(counts) / n) if n else 0.0,
        "n_colliding_items": int(counts[counts > 1].sum()),
        "max_group": int(counts.max()) if n else 0,
    }


def _mean_pair_cosine(emb: np.ndarray, groups: np.ndarray) -> float:
    """Mean cosine over all unordered pairs within the same group (exact, via per-group sums)."""
    total, pairs = 0.0, 0
    for g in np.unique(groups):
        e = emb[groups == g]
        m = len(e)
        if m < 2:
            continue
        s = e.sum(0)
        total += float(s @ s - (e * e).sum())  # Σ_{i≠j} <e_i, e_j>
        pairs += m * (m - 1)
    return total / pairs if pairs else float("nan")


def first_code_cosine_ratio(
    emb: np.ndarray, codes: np.ndarray, n_random: int = 200_000, seed: int = 0
) -> dict[str, float]:
    """Mean cosine of item pairs sharing the first code vs random pairs.

    Args:
        emb: item embeddings ``[N, D]`` (normalised here).
        codes: ``[N, L]``.
        n_random: random (distinct) pairs for the baseline.

    Returns ``{"same_first_code", "random_pairs", "ratio"}``.
    """
    e = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    same = _mean_pair_cosine(e, codes[:, 0])
    rng = np.random.default_rng(seed)
    n = len(e)
    a = rng.integers(0, n, n_random)
    b = (a + rng.integers(1, n, n_random)) % n  # b != a
    rand = float(np.einsum("ij,ij->i", e[a], e[b]).mean())
    return {"same_first_code": same, "random_pairs": rand, "ratio": same / rand if rand else float("nan")}


def genre_purity(first_codes: np.ndarray, genres: Sequence[Sequence[str]]) -> float:
    """Σ_clusters max_genre |{items in cluster with that genre}| / N (items may carry several genres)."""
    n = len(first_codes)
    if n == 0:
        return float("nan")
    total = 0
    for c in np.unique(first_codes):
        idx = np.flatnonzero(first_codes == c)
        cnt = Counter(g for i in idx for g in set(genres[int(i)]))
        total += max(cnt.values()) if cnt else 0
    return total / n


def genre_purity_vs_random(
    first_codes: np.ndarray, genres: Sequence[Sequence[str]], n_perm: int = 20, seed: int = 0
) -> dict[str, float]:
    """Genre purity of the first level and of ``n_perm`` random permutations of it (same cluster sizes).

    Returns ``{"purity", "random_mean", "random_std", "lift"}`` (lift = purity / random_mean).
    """
    pur = genre_purity(first_codes, genres)
    rng = np.random.default_rng(seed)
    rand = np.array([genre_purity(rng.permutation(first_codes), genres) for _ in range(n_perm)])
    return {
        "purity": pur,
        "random_mean": float(rand.mean()),
        "random_std": float(rand.std()),
        "lift": pur / float(rand.mean()) if rand.mean() else float("nan"),
    }


def prefix_examples(
    table: CodeTable, titles: Sequence[str], depth: int = 2, n_groups: int = 5, per_group: int = 5, seed: int = 0
) -> pd.DataFrame:
    """Items that share their first ``depth`` codes: ``n_groups`` groups (among the largest, picked at
    random), ``per_group`` items each, with the prefix tokens, each item's full ID and title."""
    codes = table.codes
    keys = [tuple(r) for r in codes[:, :depth]]
    groups: dict[tuple, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    multi = sorted((k for k, v in groups.items() if len(v) >= 2), key=lambda k: (-len(groups[k]), k))
    rng = np.random.default_rng(seed)
    pool = multi[: max(n_groups * 3, n_groups)]
    chosen = sorted(rng.choice(len(pool), size=min(n_groups, len(pool)), replace=False).tolist()) if pool else []
    rows = []
    for gi in chosen:
        k = pool[gi]
        prefix = "".join(table.item_tokens(groups[k][0])[:depth])
        for i in groups[k][:per_group]:
            rows.append(
                {
                    "prefix": prefix,
                    "group_size": len(groups[k]),
                    "item": i,
                    "semantic_id": "".join(table.item_tokens(i)),
                    "title": str(titles[i]),
                }
            )
    return pd.DataFrame(rows)


def coherence_summary(
    emb: np.ndarray, codes: np.ndarray, genres: Sequence[Sequence[str]] | None, seed: int = 0
) -> dict[str, float]:
    """The two coherence measures in one flat dict (genre ones only when genres are known)."""
    out = {f"cosine_{k}": v for k, v in first_code_cosine_ratio(emb, codes, seed=seed).items()}
    if genres is not None and any(len(g) for g in genres):
        out.update({f"genre_{k}": v for k, v in genre_purity_vs_random(codes[:, 0], genres, seed=seed).items()})
    return out


def collision_table(raw: CodeTable, final: CodeTable) -> pd.DataFrame:
    """One row before and one after de-duplication: levels, unique IDs, collision rate, largest group."""
    rows = []
    for name, t in (("before de-duplication", raw), ("after de-duplication", final)):
        st = collision_stats(t.codes)
        rows.append(
            {
                "codes": name,
                "levels": t.n_levels,
                "codebook_sizes": "x".join(map(str, t.codebook_sizes)),
                "items": st["n_items"],
                "unique_ids": st["n_unique"],
                "collision_rate": st["collision_rate"],
                "items_in_collisions": st["n_colliding_items"],
                "largest_group": st["max_group"],
            }
        )
    return pd.DataFrame(rows)


def coherence_table(
    emb: np.ndarray, codes: np.ndarray, genres: Sequence[Sequence[str]] | None, seed: int = 0
) -> pd.DataFrame:
    """The coherence measures as a table: measure, codes, random baseline, ratio."""
    c = coherence_summary(emb, codes, genres, seed)
    rows = [
        {
            "measure": "mean cosine of pairs sharing the first code",
            "codes": c["cosine_same_first_code"],
            "random": c["cosine_random_pairs"],
            "ratio": c["cosine_ratio"],
        }
    ]
    if "genre_purity" in c:
        rows.append(
            {
                "measure": "genre purity of first-level codes",
                "codes": c["genre_purity"],
                "random": c["genre_random_mean"],
                "ratio": c["genre_lift"],
            }
        )
    return pd.DataFrame(rows)
