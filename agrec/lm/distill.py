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
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from agrec.lm.item_embedding import ItemIndexer
from agrec.lm.prompts import IGNORE

# (items [B, K] project item ids, -1 = padding after the row's last item; rows [P]; positions [P]) -> logits
# [P, n_items]: for each (row, position) pair, the teacher's scores of the item that follows items 0..position of
# that row
TeacherFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class CodeDistiller:
    """Soft code targets from a teacher's next-item distribution (see the module docstring).

    Args:
        teacher: the teacher's logits after prefixes of a batch of item sequences (:data:`TeacherFn`).
        item_token_ids: ``LongTensor[n_items, n_levels]``, the vocabulary ids of each item's codes (rows distinct).
        vocab_size: the tokenizer's vocabulary size (every input id is below it).
        weight: λ in ``(0, 1]``, the soft term's share.
        temperature: ``T > 0``.
    """

    def __init__(
        self,
        teacher: TeacherFn,
        item_token_ids: torch.Tensor,
        vocab_size: int,
        weight: float,
        temperature: float = 1.0,
    ):
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
        self._on: dict[torch.device, dict[str, torch.Tensor]] = {}

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
        device = input_ids.device
        tabs = self._at(device)
        items, owner, level = self.code_positions(input_ids)
        supervised = labels[:, 1:] != IGNORE
        own, lvl = owner[:, 1:][supervised], level[:, 1:][supervised]  # [N]
        b = torch.arange(input_ids.shape[0], device=device)[:, None].expand_as(supervised)[supervised]
        has = (own >= 1) & (lvl >= 0)  # a code of an item with at least one item before it in its row
        targets = torch.zeros(int(has.sum()), n_logits, device=device)
        if not bool(has.any()):
            return has, targets
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
        path = tabs["prefix"][items[b, own]]  # [M, n_levels]: the observed item's prefix id at each level
        keep = torch.ones(len(b), dtype=torch.bool, device=device)
        for lv in range(L):
            sel = (lvl == lv).nonzero(as_tuple=True)[0]
            if len(sel) == 0:
                continue
            first, tok = tabs[f"first{lv}"], tabs[f"tok{lv}"]
            p = path[sel, lv]
            runs = first[p][:, None] + torch.arange(self._widths[lv], device=device)[None, :]
            real = runs < first[p + 1][:, None]  # [n_sel, width]: the prefix's children (the rest is padding)
            runs = runs.clamp(max=len(tok) - 1)
            mass = sums[lv][which[sel][:, None], runs] * real
            total = mass.sum(1, keepdim=True)
            # a prefix whose whole mass underflowed even in float64 has no target: the hard one alone
            keep[sel] = total[:, 0] > 0
            dist = torch.zeros(len(sel), n_logits, dtype=torch.float64, device=device)
            dist.scatter_add_(1, tok[runs], mass / total.clamp(min=torch.finfo(torch.float64).tiny))
            targets[sel] = dist.float()
        if not bool(keep.all()):
            has[has.nonzero(as_tuple=True)[0][~keep]] = False
            targets = targets[keep]
        return has, targets

    def loss(
        self, logits: torch.Tensor, input_ids: torch.Tensor, labels: torch.Tensor, hard: torch.Tensor
    ) -> torch.Tensor:
        """Summed loss of a batch's supervised positions (module docstring).

        Args:
            logits: ``[N, V]`` the LM's logits at the supervised positions (row-major order).
            input_ids: ``[B, T]`` the batch's token ids.
            labels: ``[B, T]`` its labels.
            hard: ``[N]`` the per-position hard loss (cross-entropy of the observed token, label smoothing and all).
        """
        has, soft = self.soft_targets(input_ids, labels, logits.shape[-1])
        if soft.shape[0] == 0:
            return hard.sum()
        T = self.temperature
        log_p = F.log_softmax(logits[has].float() / T, dim=-1)
        soft_ce = -(soft * log_p).sum(-1)  # cross-entropy with the soft target (its KL up to a constant)
        lam = self.weight
        return hard[~has].sum() + (1 - lam) * hard[has].sum() + lam * T * T * soft_ce.sum()


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
