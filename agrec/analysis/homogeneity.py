"""Token homogeneity of beams (paper Fig. 2): how many distinct code prefixes the top beams share."""

from __future__ import annotations

import numpy as np


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
