"""Make a code table collision-free: every item gets a distinct code sequence (a bijection).

Two strategies, both deterministic:

- ``extra_level`` (default; TIGER's choice): append one level; the items of a group that share all
  codes get 0, 1, 2, … in it (in item order), every other item gets 0. Always succeeds, keeps every
  learnt code as it is, and the LM sees an honest "which of these near-identical items" token. Cost:
  one more token per item, and a small extra codebook (its size = the largest group).
- ``reassign`` (LC-Rec's idea, which it implements with repeated Sinkhorn passes): keep the length;
  in each group the item closest to its last-level codeword keeps the code, the others move to the
  nearest *free* code of the last level under the same prefix (ranked by the quantiser's distances,
  or by code index for imported codes that come without them). The moved items get a less fitting
  last code; a prefix whose last level is full cannot take more items, so what remains falls back to
  an extra level (reported in the result).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agrec.semantic_ids.codes import CodeTable


@dataclass
class DedupReport:
    """What de-duplication did: counts before/after, items moved, whether a level was added."""

    method: str
    collisions_before: int  # items sharing their full code with an earlier item
    colliding_items_before: int  # every item of a group of size > 1
    max_group_before: int
    reassigned: int = 0  # items whose last code was changed (reassign)
    extra_level: bool = False  # a de-duplication level was appended
    extra_codebook_size: int = 0
    collisions_after: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _groups(codes: np.ndarray) -> list[np.ndarray]:
    """Groups (arrays of item indices, ascending) of items sharing their full code, size > 1, in order
    of their first item."""
    _, inv, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    out = [np.flatnonzero(inv == g) for g in np.flatnonzero(counts > 1)]
    return sorted(out, key=lambda g: int(g[0]))


def add_extra_level(table: CodeTable, force: bool = False) -> CodeTable:
    """Append a de-duplication level: within each group of identical codes, items get 0, 1, … in
    item order; items without a duplicate get 0. Returns ``table`` unchanged when it has no
    collisions (unless ``force``)."""
    codes = table.codes
    groups = _groups(codes)
    if not groups and not force:
        return table
    extra = np.zeros(len(codes), dtype=np.int64)
    for g in groups:
        extra[g] = np.arange(len(g))
    size = int(extra.max()) + 1 if len(extra) else 1
    return CodeTable(
        codes=np.concatenate([codes, extra[:, None]], axis=1),
        codebook_sizes=(*table.codebook_sizes, max(size, 1)),
        item_ids=table.item_ids,
    )


def reassign_duplicates(table: CodeTable, last_dist: np.ndarray | None = None) -> tuple[CodeTable, int]:
    """Move duplicates to the nearest free last-level code under their prefix (see module docstring).

    Args:
        table: codes ``[N, L]``.
        last_dist: ``[N, K_last]`` distances of each item to every last-level codeword, or None (then
            free codes are tried in index order, and the item kept is the first of its group).

    Returns the new table (possibly still with collisions, where a prefix ran out of free codes) and
    the number of items moved.
    """
    codes = table.codes.copy()
    k_last = table.codebook_sizes[-1]
    if last_dist is not None and last_dist.shape != (len(codes), k_last):
        raise ValueError(f"last_dist must be [{len(codes)}, {k_last}], got {last_dist.shape}")
    prefix_len = codes.shape[1] - 1
    used: dict[tuple[int, ...], set[int]] = {}
    for row in codes:
        used.setdefault(tuple(row[:prefix_len].tolist()), set()).add(int(row[-1]))
    moved = 0
    for g in _groups(table.codes):
        if last_dist is not None:
            own = last_dist[g, codes[g, -1]]
            g = g[np.argsort(own, kind="stable")]  # the best-fitting item keeps the code
        prefix = tuple(codes[g[0], :prefix_len].tolist())
        taken = used[prefix]
        for item in g[1:]:
            order = np.argsort(last_dist[item], kind="stable") if last_dist is not None else np.arange(k_last)
            free = next((int(c) for c in order if int(c) not in taken), None)
            if free is None:
                break  # this prefix's last level is full; the rest stay duplicates
            codes[item, -1] = free
            taken.add(free)
            moved += 1
    return CodeTable(codes=codes, codebook_sizes=table.codebook_sizes, item_ids=table.item_ids), moved


def make_collision_free(
    table: CodeTable, method: str = "extra_level", last_dist: np.ndarray | None = None
) -> tuple[CodeTable, DedupReport]:
    """A collision-free copy of ``table`` and a report of what changed.

    ``method`` is ``extra_level`` or ``reassign`` (see module docstring); the result is always a
    bijection (``reassign`` falls back to an extra level for what it cannot place).
    """
    if method not in ("extra_level", "reassign"):
        raise ValueError(f"unknown de-duplication method {method!r} (extra_level or reassign)")
    groups = _groups(table.codes)
    rep = DedupReport(
        method=method,
        collisions_before=table.n_collisions(),
        colliding_items_before=int(sum(len(g) for g in groups)),
        max_group_before=max((len(g) for g in groups), default=1 if table.n_items else 0),
    )
    out = table
    if method == "reassign" and groups:
        out, rep.reassigned = reassign_duplicates(table, last_dist)
    if not out.is_collision_free():
        out = add_extra_level(out)
        rep.extra_level = True
        rep.extra_codebook_size = out.codebook_sizes[-1]
    rep.collisions_after = out.n_collisions()
    assert rep.collisions_after == 0, "de-duplication left a collision"  # an invariant, not input checking
    return out, rep
