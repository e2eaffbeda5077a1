"""Distillation of an item-level recommender into the generative LM (``lm.distill_teacher``).

The generative LM learns from one observed next item per position (paper Eq. 8): a one-hot target over the
codes. A trained item-level recommender (the teacher; SASRec, :mod:`agrec.baselines`) knows more: a whole
distribution over the next item. Knowledge distillation (Hinton et al. 2015) trains the student on that
distribution too, a soft target that spreads the gradient over items like the observed one and regularises a
student that otherwise memorises its few targets per user.

The LM does not score items; it factorises an item into its code tuple, one token per level, each predicted
after the true earlier codes (teacher forcing). So the teacher's item distribution ``q`` is turned into one
distribution per code position, the one the LM's prediction at that position should match:

    level 1:  q(c_1 = a)               = sum of q(i) over the items i whose first code is a
    level l:  q(c_l = a | c_<l = t_<l) = sum of q(i) over items with prefix t_<l and l-th code a,
                                         divided by the sum over items with prefix t_<l

where ``t`` is the observed item's code tuple. These are exactly the conditionals of ``q`` along the path the
LM is trained on, so a student that matched them at every level would rank items as the teacher does.

The loss at a code position with a teacher target is ``(1 - λ)·CE(observed code) + λ·T²·CE(q_T, p_T)`` (λ =
``lm.distill_weight``, ``T`` = ``lm.distill_temperature``; ``q_T`` and ``p_T`` the teacher's and the LM's
softmax at temperature ``T``; the ``T²`` keeps the soft term's gradient on the scale of the hard one, as in Hinton
et al.). A position has a teacher target where the teacher has something to read: the first item of a training
sequence has no earlier item in it, so it keeps the hard target alone. The teacher reads what the LM reads, the
items of the training sequence before the target (an Eq. 7 window's, not the user's earlier windows). The masses
are summed in float64 from the items upwards (positive terms only), so a prefix far below the teacher's top items
keeps its conditionals; one whose whole mass underflows even there (some 700 nats down) keeps the hard target
alone. The validation loss stays the codes' plain NLL, and the teacher is used only while training: the trained
LM generates on its own.

**Off-path branches** (``lm.distill_branch_tokens: B``). The observed path supervises the LM's conditionals under
one prefix per level, the observed item's. Beam search ranks the items by the product of the conditionals along
*every* path it keeps, and the item-level KL between teacher and student decomposes over the code trie exactly:

    KL(q || p) = sum over prefixes n of q(n) · KL(q(. | n) || p(. | n))

(the chain rule of KL; ``q(n)`` the teacher's mass of the items under ``n``; at temperature ``T`` both sides are the
tempered ``q_T`` and ``p_T``). The observed path is one sample of
that sum. With ``B > 0`` each training row also gets up to ``B`` extra tokens, the off-path prefixes of the row's
distilled items with the most teacher mass: a prefix that leaves the observed path at level ``m`` is fed as its
codes from level ``m`` on, at the positions of the observed codes they stand beside, each attending to the row's
tokens before the observed level-``m`` code and to its own earlier codes (a tree attention mask; the row's own
tokens never see them). Its output is trained towards the teacher's conditional of the next level, weighted by
the prefix's mass: ``λ·T²·q_T(n)·CE(q_T(. | n), p_T(. | n))``. A prefix's mass is never above its parent's, and
ties keep the shallower first, so the chosen prefixes form subtrees that hang off the observed path. The row's own
tokens go through the same computation as without branches (up to the attention kernel's rounding: a 4-D mask may
take another kernel; with ``lm.tiny.item_dropout`` the dropout draws cover the extra tokens too, so they differ);
the cost is the extra tokens (about linear in them). The logged training loss then holds the branch term too (a
cross-entropy, so it includes the teacher conditionals' entropy): its curve is not comparable with ``B = 0``'s.
Codes of one level have no prefix that predicts a further level, so ``B > 0`` is refused there.

With ``cache=True`` (``lm.distill_cache``) a row's targets are computed once and kept (:mod:`agrec.lm.target_cache`):
:meth:`CodeDistiller.targets` computes the rows it has not seen and assembles every row's from the cache, through the
same layout (:func:`assemble_branches`) as without it.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from agrec.lm.item_embedding import ItemIndexer
from agrec.lm.prompts import IGNORE
from agrec.lm.target_cache import RowTargets, assemble_rows, row_keys, split_rows

# (items [B, K] project item ids, -1 = padding after the row's last item; rows [P]; positions [P]) -> logits
# [P, n_items]: for each (row, position) pair, the teacher's scores of the item that follows items 0..position of
# that row
TeacherFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class Branches(NamedTuple):
    """The off-path prefixes of a padded batch of ``R`` rows and ``T`` tokens (module docstring), ``E`` slots per
    row appended after its tokens (a row with fewer prefixes fills the rest with padding that attends only to
    itself and is trained on nothing).

    ``input_ids`` / ``position_ids`` ``[R, E]``: each prefix's last code token and the position of the observed
    code it stands beside. ``allowed`` ``[R, T + E, T + E]`` bool: which key each query of the extended rows may
    attend (the row's own tokens as without branches). ``rows`` / ``slots`` ``[M]``: where the ``M`` prefixes are.
    ``targets`` ``[M, V]``: the teacher's conditional over the next level's codes given each prefix, at
    temperature ``T``. ``weights`` ``[M]``: each prefix's teacher mass ``q_T(n)``.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    allowed: torch.Tensor
    rows: torch.Tensor
    slots: torch.Tensor
    targets: torch.Tensor
    weights: torch.Tensor


class BranchParts(NamedTuple):
    """The off-path prefixes of a batch before they are laid out (:func:`assemble_branches`): everything here
    belongs to one row and is the same whichever rows share its batch. The ``M`` prefixes are in row-major order,
    each row's in its slots ``0, 1, ...`` (heaviest first).

    ``rows`` / ``slots`` / ``input_ids`` / ``position_ids`` ``[M]``: as in :class:`Branches`, one per prefix.
    ``roots`` ``[M]``: the position of the observed code each prefix replaces (it attends to the row's keys before
    it). ``child`` / ``parent`` ``[A]``: the prefixes (into ``M``) and the slot of each one's off-path ancestor in
    the same row. ``targets`` ``[M, V]`` and ``weights`` ``[M]``: as in :class:`Branches`.
    """

    rows: torch.Tensor
    slots: torch.Tensor
    input_ids: torch.Tensor
    position_ids: torch.Tensor
    roots: torch.Tensor
    child: torch.Tensor
    parent: torch.Tensor
    targets: torch.Tensor
    weights: torch.Tensor


def assemble_branches(parts: BranchParts, B: int, T: int, attention_mask: torch.Tensor | None) -> Branches:
    """Lay out a batch's off-path prefixes (:class:`BranchParts`) after its ``B`` rows of ``T`` tokens: ``E`` slots
    per row, the most any row uses, and the extended rows' attention (the rows' own causal attention over their
    real keys; each prefix to the row's keys before its root, to itself and to its off-path ancestors; an empty
    slot to itself alone). ``attention_mask`` ``[B, T]``: 1 on real tokens (None: all real)."""
    device = parts.rows.device
    r_b, slot = parts.rows, parts.slots
    E = int(slot.max()) + 1 if len(slot) else 0
    allowed = torch.zeros(B, T + E, T + E, dtype=torch.bool, device=device)
    causal = torch.ones(T, T, dtype=torch.bool, device=device).tril()
    real = torch.ones(B, T, dtype=torch.bool, device=device) if attention_mask is None else attention_mask.bool()
    allowed[:, :T, :T] = causal[None] & real[:, None, :]
    allowed[r_b, T + slot, :T] = (torch.arange(T, device=device)[None, :] < parts.roots[:, None]) & real[r_b]
    ar = torch.arange(E, device=device)
    allowed[:, T + ar, T + ar] = True  # itself (and an empty slot attends to itself alone)
    allowed[r_b[parts.child], T + slot[parts.child], T + parts.parent] = True
    tokens = torch.zeros(B, E, dtype=torch.long, device=device)
    positions = torch.zeros(B, E, dtype=torch.long, device=device)
    tokens[r_b, slot] = parts.input_ids
    positions[r_b, slot] = parts.position_ids
    return Branches(tokens, positions, allowed, r_b, slot, parts.targets, parts.weights)


class _Masses(NamedTuple):
    """One teacher pass over a batch: the supervised positions with a teacher target and the teacher's mass of
    every run (prefix + code) of every level, per distilled item."""

    items: torch.Tensor  # [B, K] the items of each row (code_positions)
    owner: torch.Tensor  # [B, T]
    level: torch.Tensor  # [B, T]
    has: torch.Tensor  # [N] bool over the supervised positions
    b: torch.Tensor  # [H] row of each position with a teacher target
    own: torch.Tensor  # [H] index in its row of the item the position's code belongs to
    lvl: torch.Tensor  # [H] that code's level
    which: torch.Tensor  # [H] the position's distilled item, into pairs
    pairs: torch.Tensor  # [P] distilled items as row * K + index in the row
    sums: list[torch.Tensor]  # per level [P, n_runs] float64


class CodeDistiller:
    """Soft code targets from a teacher's next-item distribution (see the module docstring).

    Args:
        teacher: the teacher's logits after prefixes of a batch of item sequences (:data:`TeacherFn`).
        item_token_ids: ``LongTensor[n_items, n_levels]``, the vocabulary ids of each item's codes (rows distinct).
        vocab_size: the tokenizer's vocabulary size (every input id is below it).
        weight: λ in ``(0, 1]``, the soft term's share.
        temperature: ``T > 0``.
        branch_tokens: ``B >= 0``, the off-path prefixes distilled per row (module docstring; 0 = none).
        cache: keep each row's targets after computing them once (:mod:`agrec.lm.target_cache`; ``fill`` computes
            a set of rows ahead); False computes every batch's anew.
    """

    def __init__(
        self,
        teacher: TeacherFn,
        item_token_ids: torch.Tensor,
        vocab_size: int,
        weight: float,
        temperature: float = 1.0,
        branch_tokens: int = 0,
        cache: bool = False,
    ):
        if branch_tokens < 0:
            raise ValueError(f"off-path prefixes per row (lm.distill_branch_tokens) must be >= 0, got {branch_tokens}")
        self.branch_tokens = int(branch_tokens)
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"distillation weight (lm.distill_weight) must be in (0, 1], got {weight}")
        if temperature <= 0:
            raise ValueError(f"distillation temperature (lm.distill_temperature) must be > 0, got {temperature}")
        self.teacher = teacher
        self.weight, self.temperature = float(weight), float(temperature)
        self.indexer = ItemIndexer(item_token_ids, vocab_size)
        self.n_levels = self.indexer.n_levels
        self._tables = _path_tables(item_token_ids.to(torch.long).cpu())
        # the most children one prefix has, per level: Python ints, so that the hot path never reads a device tensor
        self._widths = [int(self._tables.pop(f"width{lv}")) for lv in range(self.n_levels)]
        # the most runs any level has (a key radix for finding a prefix's parent among the chosen ones)
        self._runs_max = max(int(self._tables[f"first{lv}"][-1]) for lv in range(self.n_levels))
        if self.branch_tokens and self.n_levels < 2:
            raise ValueError(
                f"lm.distill_branch_tokens ({self.branch_tokens}) needs codes of 2 levels or more: with "
                f"{self.n_levels} no prefix predicts a further level"
            )
        self._on: dict[torch.device, dict[str, torch.Tensor]] = {}
        self.vocab_size = int(vocab_size)
        self.cache: dict[bytes, RowTargets] | None = {} if cache else None
        self._col_dtype: np.dtype = (
            np.dtype(np.int16) if self.vocab_size <= np.iinfo(np.int16).max + 1 else np.dtype(np.int32)
        )

    def _at(self, device: torch.device) -> dict[str, torch.Tensor]:
        if device not in self._on:
            self._on[device] = {k: v.to(device) for k, v in self._tables.items()}
        return self._on[device]

    def code_positions(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Where each complete item's code tokens are in a batch.

        Args:
            input_ids: ``[B, T]`` token ids of a padded batch (one sequence per row).
        Returns:
            ``(items [B, K], owner [B, T], level [B, T])``: ``items`` the items of each row in order (-1 after the
            row's last); ``owner[b, t]`` the index in ``items[b]`` of the item whose code is at ``t`` and
            ``level[b, t]`` that code's level (-1 where ``t`` holds no code of a complete item).
        """
        B, T = input_ids.shape
        L = self.n_levels
        ends = self.indexer(input_ids)  # item index at each item's last code, -1 elsewhere
        is_end = ends >= 0
        k = torch.cumsum(is_end.long(), dim=1) - 1  # the item's index in its row, at its last code
        K = max(1, int(is_end.sum(1).max()) if B else 1)
        items = torch.full((B, K), -1, dtype=torch.long, device=input_ids.device)
        rows = torch.arange(B, device=input_ids.device)[:, None].expand(B, T)
        items[rows[is_end], k[is_end]] = ends[is_end]
        owner = torch.full((B, T), -1, dtype=torch.long, device=input_ids.device)
        level = torch.full((B, T), -1, dtype=torch.long, device=input_ids.device)
        for back in range(L):  # the code `back` positions before an item's last one is at level L-1-back
            if back >= T:
                break
            at = F.pad(is_end[:, back:], (0, back), value=False)  # at[t]: an item ends at t + back
            owner[at] = F.pad(k[:, back:], (0, back), value=-1)[at]
            level[at] = L - 1 - back
        return items, owner, level

    @torch.no_grad()
    def _masses(self, input_ids: torch.Tensor, labels: torch.Tensor) -> _Masses | None:
        """The teacher's pass over a batch (:class:`_Masses`); None where no supervised position has a teacher."""
        device = input_ids.device
        tabs = self._at(device)
        items, owner, level = self.code_positions(input_ids)
        supervised = labels[:, 1:] != IGNORE
        own, lvl = owner[:, 1:][supervised], level[:, 1:][supervised]  # [N]
        b = torch.arange(input_ids.shape[0], device=device)[:, None].expand_as(supervised)[supervised]
        has = (own >= 1) & (lvl >= 0)  # a code of an item with at least one item before it in its row
        if not bool(has.any()):
            return None
        b, own, lvl = b[has], own[has], lvl[has]
        # one teacher distribution per supervised item (its codes share it)
        K = items.shape[1]
        pairs, which = torch.unique(b * K + own, return_inverse=True)
        logits = self.teacher(items, pairs // K, pairs % K - 1)  # [P, n_items]: after the item before each
        # float64 from here: the softmax underflows only some 700 nats below the top item, not 100
        z = logits.double()
        q = torch.softmax(z if self.temperature == 1.0 else z / self.temperature, dim=-1)
        # in code order: a gather along the rows, the same values as index_select at a third of its time on CPU
        q = q.gather(1, tabs["order"][None, :].expand_as(q))
        # the mass of every run (prefix + code) of every level, summed upwards from the items (positive terms only:
        # no cancellation, so a prefix far below the teacher's top items keeps its relative masses). The items'
        # code tuples are distinct (ItemIndexer checks), so the last level's runs are the items in code order
        L = self.n_levels
        sums = [q.new_zeros(0)] * L
        sums[L - 1] = q
        for lv in range(L - 2, -1, -1):
            sums[lv] = q.new_zeros(q.shape[0], len(tabs[f"tok{lv}"])).index_add_(
                1, tabs[f"parent{lv + 1}"], sums[lv + 1]
            )
        return _Masses(items, owner, level, has, b, own, lvl, which, pairs, sums)

    def _conditionals(
        self, m: _Masses, lv: int, pair: torch.Tensor, prefix: torch.Tensor, n_logits: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's distribution over the level-``lv`` codes given a prefix: ``pair`` ``[n]`` the distilled
        item (into ``m.pairs``) whose teacher pass to read, ``prefix`` ``[n]`` the prefix's id at level ``lv`` (a
        run of level ``lv - 1``). Returns ``(dist [n, n_logits] float64, total [n])``, ``total`` the prefix's
        mass (0 where it underflowed: no target)."""
        tabs = self._at(pair.device)
        first, tok = tabs[f"first{lv}"], tabs[f"tok{lv}"]
        runs = first[prefix][:, None] + torch.arange(self._widths[lv], device=pair.device)[None, :]
        real = runs < first[prefix + 1][:, None]  # [n, width]: the prefix's children (the rest is padding)
        runs = runs.clamp(max=len(tok) - 1)
        mass = m.sums[lv][pair[:, None], runs] * real
        total = mass.sum(1)
        dist = torch.zeros(len(pair), n_logits, dtype=torch.float64, device=pair.device)
        dist.scatter_add_(1, tok[runs], mass / total[:, None].clamp(min=torch.finfo(torch.float64).tiny))
        return dist, total

    def _path_targets(self, m: _Masses, n_logits: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(has [N], targets [M, V])`` of :meth:`soft_targets` from a teacher pass."""
        tabs = self._at(m.b.device)
        has = m.has.clone()
        path = tabs["prefix"][m.items[m.b, m.own]]  # [H, n_levels]: the observed item's prefix id at each level
        targets = torch.zeros(len(m.b), n_logits, device=m.b.device)
        keep = torch.ones(len(m.b), dtype=torch.bool, device=m.b.device)
        for lv in range(self.n_levels):
            sel = (m.lvl == lv).nonzero(as_tuple=True)[0]
            if len(sel) == 0:
                continue
            dist, total = self._conditionals(m, lv, m.which[sel], path[sel, lv], n_logits)
            # a prefix whose whole mass underflowed even in float64 has no target: the hard one alone
            keep[sel] = total > 0
            targets[sel] = dist.float()
        if not bool(keep.all()):
            has[has.nonzero(as_tuple=True)[0][~keep]] = False
            targets = targets[keep]
        return has, targets

    @torch.no_grad()
    def soft_targets(
        self, input_ids: torch.Tensor, labels: torch.Tensor, n_logits: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's code distributions at the supervised positions of a padded batch.

        Args:
            input_ids: ``[B, T]`` token ids of a padded batch.
            labels: ``[B, T]``, :data:`IGNORE` where unsupervised (the shift of the loss: position ``t`` predicts
                ``labels[:, t + 1]``).
            n_logits: ``V``, the width of the LM's logits (its output embedding's rows: the vocabulary, or more).
        Returns:
            ``(has [N] bool, targets [M, V])``: over the ``N`` supervised positions in row-major order (those of
            :meth:`agrec.lm.loss.SupervisedNLL.supervised_logits`), which have a teacher target, and for those
            ``M`` the target distribution over the vocabulary at temperature ``T``.
        """
        return self.targets(input_ids, None, labels, n_logits)[:2]

    @torch.no_grad()
    def targets(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, labels: torch.Tensor, n_logits: int
    ) -> tuple[torch.Tensor, torch.Tensor, Branches | None]:
        """:meth:`soft_targets` and, with ``branch_tokens > 0``, the batch's off-path prefixes (:class:`Branches`;
        None without). ``attention_mask`` ``[B, T]`` (1 on real tokens; None: all real) shapes the rows' own
        attention in :attr:`Branches.allowed`, as the model would build it from the 2-D mask. With the cache, the
        rows not in it are computed (together, as one batch) and every row's targets are read from it."""
        B, T = input_ids.shape
        if self.cache is None:
            _, has, soft, parts = self._compute(input_ids, labels, n_logits)
            return has, soft, None if parts is None else assemble_branches(parts, B, T, attention_mask)
        keys = row_keys(input_ids, labels)
        self._fill_rows(input_ids, attention_mask, labels, keys)
        read, has, soft, parts = assemble_rows(
            [self.cache[k] for k in keys], n_logits, bool(self.branch_tokens), input_ids.device
        )
        if not read:  # no supervised position has a teacher: as without the cache
            return has, soft, None
        return has, soft, None if parts is None else assemble_branches(BranchParts(*parts), B, T, attention_mask)

    @torch.no_grad()
    def fill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, labels: torch.Tensor) -> int:
        """Compute and keep the targets of a batch's rows that the cache lacks (as :meth:`targets` would, without
        assembling them); returns how many rows were computed."""
        if self.cache is None:
            raise ValueError("this distiller keeps no cache (cache=False)")
        return self._fill_rows(input_ids, attention_mask, labels, row_keys(input_ids, labels))

    def _fill_rows(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, labels: torch.Tensor, keys: list[bytes]
    ) -> int:
        assert self.cache is not None
        miss, seen = [], set()
        for r, k in enumerate(keys):  # each missing key once: equal rows share an entry
            if k not in self.cache and k not in seen:
                miss.append(r)
                seen.add(k)
        if not miss:
            return 0
        sel = torch.tensor(miss, device=input_ids.device)
        # the missing rows alone, cut to the longest of them (right-padded: what is cut is padding)
        n = input_ids.shape[1]
        if attention_mask is not None:
            n = int(attention_mask[sel].sum(1).max())
        ids, lab = input_ids[sel, :n], labels[sel, :n]
        teacher_at, has, soft, parts = self._compute(ids, lab, self.vocab_size)
        rows = split_rows(lab, has if teacher_at is None else teacher_at, has, soft, parts, self._col_dtype)
        for r, row in zip(miss, rows, strict=True):
            self.cache[keys[r]] = row
        return len(miss)

    def _compute(
        self, input_ids: torch.Tensor, labels: torch.Tensor, n_logits: int
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, BranchParts | None]:
        """One batch's targets before they are laid out: ``(teacher_at, has, soft, parts)``, ``teacher_at`` ``[N]``
        the supervised positions the teacher reads (None where it reads none: then ``has`` is all False, ``soft``
        empty and ``parts`` None), ``parts`` the off-path prefixes (None without ``branch_tokens``)."""
        m = self._masses(input_ids, labels)
        if m is None:
            N = int((labels[:, 1:] != IGNORE).sum())
            has = torch.zeros(N, dtype=torch.bool, device=input_ids.device)
            return None, has, torch.zeros(0, n_logits, device=input_ids.device), None
        has, soft = self._path_targets(m, n_logits)
        return m.has, has, soft, self._branches(m, input_ids, n_logits) if self.branch_tokens else None

    @property
    def cache_nbytes(self) -> int:
        """The cached targets' array bytes (0 without a cache)."""
        return 0 if self.cache is None else sum(r.nbytes for r in self.cache.values())

    def _branches(self, m: _Masses, input_ids: torch.Tensor, n_logits: int) -> BranchParts:
        """Each row's ``branch_tokens`` off-path prefixes of most teacher mass (module docstring), row by row
        (:class:`BranchParts`; :func:`assemble_branches` lays them out for a batch)."""
        device = input_ids.device
        tabs = self._at(device)
        L, Bt = self.n_levels, self.branch_tokens
        B, T = input_ids.shape
        K = m.items.shape[1]
        P = len(m.pairs)
        row, idx = m.pairs // K, m.pairs % K
        observed = tabs["prefix"][m.items[row, idx]]  # [P, L]: prefix ids; level l's run = prefix id at l + 1
        # candidates: per distilled item and level 0 .. L-2 (a prefix that predicts a further level), its heaviest
        # off-path runs; the row's best Bt are among these
        mass_c, level_c, run_c = [], [], []
        for lv in range(L - 1):
            s = m.sums[lv].clone()
            s[torch.arange(P, device=device), observed[:, lv + 1]] = -1.0  # the observed path is not a branch
            k = min(Bt, s.shape[1])
            v, r = s.topk(k, dim=1)
            mass_c.append(v)
            run_c.append(r)
            level_c.append(torch.full_like(r, lv))
        mass, lvl, run = torch.cat(mass_c, 1), torch.cat(level_c, 1), torch.cat(run_c, 1)  # [P, C]
        C = mass.shape[1]
        # per row: its items' candidates side by side, heaviest first, the shallower first among equals (a parent
        # is never lighter than its child, so the chosen set holds every chosen prefix's off-path ancestors)
        dense = torch.full((B, K * C), -1.0, dtype=torch.float64, device=device)
        cols = idx[:, None] * C + torch.arange(C, device=device)[None, :]
        dense[row[:, None].expand(P, C), cols] = mass
        lv_dense = torch.full((B, K * C), L, dtype=torch.long, device=device)
        lv_dense[row[:, None].expand(P, C), cols] = lvl
        by_level = torch.sort(lv_dense, dim=1, stable=True).indices
        by_mass = torch.sort(-dense.gather(1, by_level), dim=1, stable=True).indices
        chosen = by_level.gather(1, by_mass)[:, :Bt]  # [B, <=Bt] columns into dense
        ok = dense.gather(1, chosen) > 0  # heaviest first: a row's valid slots come first
        E = int(ok.sum(1).max())  # no slot that every row leaves empty
        chosen, ok = chosen[:, :E], ok[:, :E]
        r_b, slot = ok.nonzero(as_tuple=True)  # [M]
        col = chosen[r_b, slot]
        pair_of = torch.full((B, K), -1, dtype=torch.long, device=device)
        pair_of[row, idx] = torch.arange(P, device=device)
        p = pair_of[r_b, col // C]  # the distilled item of each chosen prefix
        c = col % C
        n_lv, n_run, weight = lvl[p, c], run[p, c], mass[p, c]
        # where each prefix leaves the observed path: its ancestors' runs, from the parent tables
        anc = torch.full((len(p), L - 1), -1, dtype=torch.long, device=device)
        for lv in range(L - 2, -1, -1):
            at = n_lv == lv
            anc[at, lv] = n_run[at]
            deeper = n_lv > lv
            if lv + 1 <= L - 2:
                anc[deeper, lv] = tabs[f"parent{lv + 1}"][anc[deeper, lv + 1]]
        depth = torch.arange(L - 1, device=device)[None, :]
        off = (anc != observed[p, 1:]) & (depth <= n_lv[:, None])
        diverge = torch.where(off, depth.expand_as(off), L).min(1).values  # m: the first level off the path
        # positions of the observed item's codes in its row
        pos_of = torch.zeros(B, K, L, dtype=torch.long, device=device)
        has_code = m.owner >= 0
        rows_t = torch.arange(B, device=device)[:, None].expand(B, T)
        pos_of[rows_t[has_code], m.owner[has_code], m.level[has_code]] = torch.arange(T, device=device)[None, :].expand(
            B, T
        )[has_code]
        root = pos_of[r_b, idx[p], diverge]  # the observed code the branch replaces: keys before it are shared
        position = pos_of[r_b, idx[p], n_lv]
        # its off-path ancestors, found among the chosen prefixes of its row by (item, level, run)
        key = (p * L + n_lv) * self._runs_max + n_run
        sorted_key, order = torch.sort(key)
        child, parent = [], []
        for lv in range(L - 2):
            need = (diverge <= lv) & (n_lv > lv)  # an ancestor at level lv is off the path
            if not bool(need.any()):
                continue
            want = (p[need] * L + lv) * self._runs_max + anc[need, lv]
            at = torch.searchsorted(sorted_key, want).clamp(max=len(key) - 1)
            if not bool((sorted_key[at] == want).all()):
                raise AssertionError("an off-path prefix was chosen without its parent")
            child.append(need.nonzero(as_tuple=True)[0])
            parent.append(slot[order[at]])
        tok_of = torch.zeros(len(p), dtype=torch.long, device=device)
        for lv in range(L - 1):
            at = n_lv == lv
            tok_of[at] = tabs[f"tok{lv}"][n_run[at]]
        targets = torch.zeros(len(p), n_logits, device=device)
        for lv in range(L - 1):
            at = (n_lv == lv).nonzero(as_tuple=True)[0]
            if len(at):
                d, _ = self._conditionals(m, lv + 1, p[at], n_run[at], n_logits)
                targets[at] = d.float()
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return BranchParts(
            r_b,
            slot,
            tok_of,
            position,
            root,
            torch.cat(child) if child else empty,
            torch.cat(parent) if parent else empty,
            targets,
            weight.float(),
        )

    def loss(
        self,
        logits: torch.Tensor,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        hard: torch.Tensor,
        targets: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Summed loss of a batch's supervised positions (module docstring).

        Args:
            logits: ``[N, V]`` the LM's logits at the supervised positions (row-major order).
            input_ids: ``[B, T]`` the batch's token ids.
            labels: ``[B, T]`` its labels.
            hard: ``[N]`` the per-position hard loss (cross-entropy of the observed token, label smoothing and all).
            targets: ``(has, soft)`` of :meth:`targets` if already computed (else computed here).
        """
        has, soft = self.soft_targets(input_ids, labels, logits.shape[-1]) if targets is None else targets
        if soft.shape[0] == 0:
            return hard.sum()
        T, lam = self.temperature, self.weight
        soft_ce = self._soft_ce(logits[has], soft)
        return hard[~has].sum() + (1 - lam) * hard[has].sum() + lam * T * T * soft_ce.sum()

    def branch_loss(self, logits: torch.Tensor, branches: Branches) -> torch.Tensor:
        """``λ·T²·Σ q_T(n)·CE(q_T(. | n), p_T(. | n))`` over the off-path prefixes (module docstring).

        Args:
            logits: ``[M, V]`` the LM's logits at the prefixes' slots (``branches.rows``, ``branches.slots``).
        """
        if logits.shape[0] == 0:
            return logits.sum() * 0.0
        T = self.temperature
        return self.weight * T * T * (branches.weights * self._soft_ce(logits, branches.targets)).sum()

    def _soft_ce(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``[n]``: the cross-entropy of each soft target ``[n, V]`` under the LM's softmax at temperature ``T`` of
        ``logits`` ``[n, V]`` (the KL to it up to a constant)."""
        return -(targets * F.log_softmax(logits.float() / self.temperature, dim=-1)).sum(-1)


def _path_tables(tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """Lookup tables of the code paths, each linear in the number of items: ``order``, the items sorted by code
    tuple; ``prefix [n_items, n_levels]``, each item's prefix id per level (level 0: the one empty prefix); per
    level ``l`` the runs of that order sharing a prefix and an ``l``-th code (runs are numbered in code order): their
    code token (``tok{l}``), the run of level ``l - 1`` holding each (``parent{l}``, from level 1), each prefix's
    first run (``first{l}``, one entry more than prefixes) and the most runs one prefix has (``width{l}``). The code
    tuples must be distinct: the last level's runs are then the items in code order."""
    n_items, n_levels = tokens.shape
    order = torch.from_numpy(np.lexsort(tokens.numpy().T[::-1]).copy())
    st = tokens[order]
    out = {"order": order}
    above = torch.zeros(0, dtype=torch.long)
    prefixes = torch.zeros(n_items, n_levels, dtype=torch.long)
    for lv in range(n_levels):
        # equal tuples are adjacent in code order: a new prefix (or child) starts where the tuple changes
        new_prefix = torch.zeros(n_items, dtype=torch.bool)
        new_prefix[0] = True
        if lv:
            new_prefix[1:] = (st[1:, :lv] != st[:-1, :lv]).any(1)
        new_child = new_prefix.clone()
        new_child[1:] |= st[1:, lv] != st[:-1, lv]
        prefix_id = torch.cumsum(new_prefix.long(), 0) - 1
        prefixes[order, lv] = prefix_id
        starts = new_child.nonzero(as_tuple=True)[0]
        counts = torch.bincount(prefix_id[starts], minlength=int(prefix_id[-1]) + 1)
        out[f"tok{lv}"] = st[starts, lv]
        if lv:  # the run of the level above that holds each run of this level
            out[f"parent{lv}"] = torch.searchsorted(above, starts, right=True) - 1
        above = starts
        out[f"first{lv}"] = F.pad(torch.cumsum(counts, 0), (1, 0))
        out[f"width{lv}"] = counts.max()
    out["prefix"] = prefixes
    return out


def sasrec_teacher(model) -> TeacherFn:
    """The :data:`TeacherFn` of a trained :class:`agrec.baselines.sasrec.SASRec` (evaluation mode, no gradient).
    Rows longer than its ``max_seq_length`` are refused (the profile checks the LM's windows against it)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)

    @torch.no_grad()
    def logits(items: torch.Tensor, rows: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        if items.shape[1] > model.max_seq_length:
            raise ValueError(
                f"{items.shape[1]} items in a row, more than SASRec's max_seq_length {model.max_seq_length}"
            )
        seq = (items + 1).clamp(min=0).to(model.device)  # model ids: 0 = padding (right-padded, causal: harmless)
        # the teacher in full precision even inside the LM's bf16 autocast: its targets are not the student's rounding
        with torch.autocast(model.device.type, enabled=False):
            hidden = model(seq)[rows.to(model.device), positions.to(model.device)]  # only the positions asked for
            return model.item_logits(hidden).float().to(items.device)

    return logits


def sasrec_item_vectors(model) -> torch.Tensor:
    """A trained :class:`agrec.baselines.sasrec.SASRec`'s item embeddings, ``[n_items, hidden_size]`` with row
    ``i`` for project item ``i`` (its padding row 0 dropped): what ``lm.tiny.item_init: teacher`` starts the LM's
    item vectors from (:func:`agrec.lm.item_embedding.init_item_embedding`)."""
    return model.item_embedding.weight.detach()[1:].float().cpu().clone()
