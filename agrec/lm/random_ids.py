"""Random item IDs: every item gets uniformly random codes, made collision-free by a de-dup level.

The "random ID" baseline of generative retrieval (TIGER, Rajput et al. 2023, Table 4): the same LM and
decoder, but codes that carry no item semantics. Selected with ``lm.codes: random``; it also lets the
LM stage run before (or without) the semantic-ID stage.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agrec.semantic_ids.codes import CodeTable


def random_code_table(
    n_items: int, codebook_sizes: Sequence[int], seed: int, item_ids: list[str] | None = None
) -> CodeTable:
    """``n_items`` rows of codes drawn uniformly per level with ``seed``.

    Items that share a full code sequence get an extra level numbering them within their group
    (0, 1, …); without any collision no level is added. The result is always a bijection.
    """
    rng = np.random.default_rng(seed)
    sizes = [int(k) for k in codebook_sizes]
    codes = (
        rng.integers(0, sizes, size=(n_items, len(sizes)), dtype=np.int64)
        if n_items
        else np.zeros((0, len(sizes)), dtype=np.int64)
    )
    if n_items:
        _, group = np.unique(codes, axis=0, return_inverse=True)
        group = group.reshape(-1)
        dedup = np.zeros(n_items, dtype=np.int64)
        seen: dict[int, int] = {}
        for i, g in enumerate(group.tolist()):
            dedup[i] = seen.get(g, 0)
            seen[g] = dedup[i] + 1
        if dedup.max() > 0:
            codes = np.concatenate([codes, dedup[:, None]], axis=1)
            sizes.append(int(dedup.max()) + 1)
    return CodeTable(codes=codes, codebook_sizes=tuple(sizes), item_ids=item_ids)
