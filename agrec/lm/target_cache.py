"""The teacher's targets of each training row, computed once (``lm.distill_cache``).

What :class:`agrec.lm.distill.CodeDistiller` gives a row (its soft code targets along the observed path and its
off-path prefixes) depends on the row's tokens and on which of them are supervised, nothing else: the teacher is
frozen and reads only the row. Without a cache every epoch recomputes them, and on a CPU that is most of a
distilled step's cost (on Games: a float64 softmax over every item and the sums up the code trie for every
distilled item, more CPU per step than the LM's own forward and backward; ``docs/lm.md``). With the cache the
trainer computes every training row's targets before its first step, in fixed batches of rows sorted by length
(so a run resumed from a checkpoint computes the same values), and each step assembles its rows' targets from
the cache.

A row's entry holds its targets sparse: a code position's target is a distribution over the children of one
prefix (all first codes at level 1, a few codes below), so only those entries are kept. The values are those of
the batch the row was computed in; without the cache each epoch's batch computes them again, which can round
differently in the teacher's matrix products beside other rows, so the two runs agree up to float rounding, not
bit for bit.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from agrec.lm.prompts import IGNORE


class RowTargets(NamedTuple):
    """One row's targets (numpy, on the CPU). Path: ``read`` (whether any supervised position of the row has a
    teacher, before underflow), ``has`` ``[N_r]`` over its supervised positions, and for the ``M_r`` with a target
    ``counts`` ``[M_r]`` nonzero entries each, ``cols`` / ``vals`` ``[sum(counts)]`` their vocabulary ids and
    probabilities. Off-path prefixes (``E_r``, in slot order): ``ids``, ``pos``, ``roots`` ``[E_r]``; ``child`` /
    ``parent`` ``[A_r]``, a prefix (into ``E_r``) and its ancestor's slot; ``b_counts`` ``[E_r]``, ``b_cols`` /
    ``b_vals`` their targets as above; ``weights`` ``[E_r]``."""

    read: bool
    has: np.ndarray
    counts: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    ids: np.ndarray
    pos: np.ndarray
    roots: np.ndarray
    child: np.ndarray
    parent: np.ndarray
    b_counts: np.ndarray
    b_cols: np.ndarray
    b_vals: np.ndarray
    weights: np.ndarray

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self if isinstance(a, np.ndarray))


def row_keys(input_ids: torch.Tensor, labels: torch.Tensor) -> list[bytes]:
    """One key per row of a batch ``[B, T]``: its tokens up to its last supervised one and which of them are
    supervised, everything its targets depend on (the teacher reads the items before a target; what follows the
    last target, padding included, changes none). Equal rows share a key and an entry."""
    sup = (labels != IGNORE).cpu().numpy()
    ids = input_ids.to(torch.int64).cpu().numpy()
    T = sup.shape[1]
    ends = np.where(sup.any(1), T - np.argmax(sup[:, ::-1], axis=1), 0)
    return [
        int(n).to_bytes(4, "little") + ids[r, :n].tobytes() + np.packbits(sup[r, :n]).tobytes()
        for r, n in enumerate(ends.tolist())
    ]


def _sparse(dense: torch.Tensor, col_dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(counts [M], cols, vals)`` of the nonzero entries of ``dense`` ``[M, V]``, row-major."""
    i, j = dense.nonzero(as_tuple=True)
    counts = torch.bincount(i, minlength=dense.shape[0])
    return counts.cpu().numpy().astype(np.int32), j.cpu().numpy().astype(col_dtype), dense[i, j].cpu().numpy()


def split_rows(
    labels: torch.Tensor,
    teacher_at: torch.Tensor,
    has: torch.Tensor,
    soft: torch.Tensor,
    parts: Any,
    col_dtype: np.dtype,
) -> list[RowTargets]:
    """A batch's targets cut into its rows.

    Args:
        labels: ``[B, T]`` the batch's labels.
        teacher_at: ``[N]`` bool over the batch's supervised positions, those the teacher reads (before a target's
            mass underflows: :meth:`agrec.lm.distill.CodeDistiller.targets` tells a batch without any apart).
        has: ``[N]``, the first output of :meth:`agrec.lm.distill.CodeDistiller.soft_targets` for the batch.
        soft: ``[M, V]``, its second output.
        parts: the batch's :class:`agrec.lm.distill.BranchParts` (None without off-path prefixes).
        col_dtype: the integer type of the stored vocabulary ids.
    """
    B = labels.shape[0]
    n_sup = (labels[:, 1:] != IGNORE).sum(1).tolist()
    has_np = has.cpu().numpy()
    has_rows = np.split(has_np, np.cumsum(n_sup)[:-1])
    read = [bool(x.any()) for x in np.split(teacher_at.cpu().numpy(), np.cumsum(n_sup)[:-1])]
    m_rows = [int(h.sum()) for h in has_rows]
    counts, cols, vals = _sparse(soft, col_dtype)
    t_off = np.concatenate([[0], np.cumsum(m_rows)])
    nz_off = np.concatenate([[0], np.cumsum(counts)])
    empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float32)
    if parts is not None:
        e_rows = torch.bincount(parts.rows, minlength=B).tolist()
        e_off = np.concatenate([[0], np.cumsum(e_rows)])
        b_counts, b_cols, b_vals = _sparse(parts.targets, col_dtype)
        b_nz = np.concatenate([[0], np.cumsum(b_counts)])
        order = torch.argsort(parts.child, stable=True)  # by prefix, so by row
        child = parts.child[order].cpu().numpy()
        parent = parts.parent[order].cpu().numpy()
        c_off = np.searchsorted(child, e_off)
        ids, pos, roots = (x.cpu().numpy() for x in (parts.input_ids, parts.position_ids, parts.roots))
        weights = parts.weights.cpu().numpy()
    out = []
    for r in range(B):
        a, b = t_off[r], t_off[r + 1]
        path = (
            has_rows[r].copy(),
            counts[a:b].copy(),
            cols[nz_off[a] : nz_off[b]].copy(),
            vals[nz_off[a] : nz_off[b]].copy(),
        )
        if parts is None:
            br = (empty_i,) * 5 + (np.zeros(0, np.int32), empty_i.astype(col_dtype), empty_f, empty_f)
        else:
            s, e = e_off[r], e_off[r + 1]
            cs, ce = c_off[r], c_off[r + 1]
            br = (
                ids[s:e].copy(),
                pos[s:e].copy(),
                roots[s:e].copy(),
                child[cs:ce] - s,
                parent[cs:ce].copy(),
                b_counts[s:e].copy(),
                b_cols[b_nz[s] : b_nz[e]].copy(),
                b_vals[b_nz[s] : b_nz[e]].copy(),
                weights[s:e].copy(),
            )
        out.append(RowTargets(read[r], *path, *br))
    return out


def _dense(counts: list[np.ndarray], cols: list[np.ndarray], vals: list[np.ndarray], n_logits: int, device):
    c = torch.from_numpy(np.concatenate(counts)).long()
    dense = torch.zeros(len(c), n_logits)
    dense[torch.repeat_interleave(torch.arange(len(c)), c), torch.from_numpy(np.concatenate(cols)).long()] = (
        torch.from_numpy(np.concatenate(vals))
    )
    return dense.to(device)


def assemble_rows(rows: list[RowTargets], n_logits: int, branches: bool, device: torch.device):
    """The batch's ``(read, has [N], soft [M, n_logits], parts)`` from its rows' entries, in row order: ``read``
    whether any row has a teacher; ``parts`` the fields of :class:`agrec.lm.distill.BranchParts` in order (None
    without off-path prefixes)."""
    read = any(r.read for r in rows)
    has = torch.from_numpy(np.concatenate([r.has for r in rows])).to(device)
    soft = _dense([r.counts for r in rows], [r.cols for r in rows], [r.vals for r in rows], n_logits, device)
    if not branches:
        return read, has, soft, None
    e = [len(r.ids) for r in rows]
    offsets = np.concatenate([[0], np.cumsum(e)[:-1]])

    def cat(xs: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.concatenate(xs)).long().to(device)

    parts = (
        cat([np.full(n, b, np.int64) for b, n in enumerate(e)]),
        cat([np.arange(n) for n in e]),
        cat([r.ids for r in rows]),
        cat([r.pos for r in rows]),
        cat([r.roots for r in rows]),
        cat([r.child + o for r, o in zip(rows, offsets, strict=True)]),
        cat([r.parent for r in rows]),
        _dense([r.b_counts for r in rows], [r.b_cols for r in rows], [r.b_vals for r in rows], n_logits, device),
        torch.from_numpy(np.concatenate([r.weights for r in rows]).astype(np.float32)).to(device),
    )
    return read, has, soft, parts
