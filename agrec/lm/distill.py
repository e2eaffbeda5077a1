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
sequence has no earlier item in it, so it keeps the hard target alone. The validation loss stays the codes' plain
NLL, and the teacher is used only while training: the trained LM generates on its own.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from agrec.lm.item_embedding import ItemIndexer
from agrec.lm.prompts import IGNORE

# items [B, K] (project item ids, -1 = padding after the row's last item) -> logits [B, K, n_items]: position k
# scores the item that follows items 0..k of the row
TeacherFn = Callable[[torch.Tensor], torch.Tensor]


class CodeDistiller:
    """Soft code targets from a teacher's next-item distribution (see the module docstring).

    Args:
        teacher: the teacher's logits for every prefix of a batch of item sequences (:data:`TeacherFn`).
        item_token_ids: ``LongTensor[n_items, n_levels]``, the vocabulary ids of each item's codes.
        vocab_size: the tokenizer's vocabulary size (every input id is below it).
        weight: λ in ``[0, 1]``, the soft term's share.
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
            raise ValueError(f"distillation weight must be in (0, 1], got {weight}")
        if temperature <= 0:
            raise ValueError(f"distillation temperature must be > 0, got {temperature}")
        self.teacher = teacher
        self.weight, self.temperature = float(weight), float(temperature)
        self.indexer = ItemIndexer(item_token_ids, vocab_size)
        tokens = item_token_ids.to(torch.long).cpu()
        self.n_items, self.n_levels = tokens.shape
        # prefix[l][i]: an id of item i's first l codes (level 0: one empty prefix shared by all items)
        prefixes = [torch.zeros(self.n_items, dtype=torch.long)]
        for lvl in range(1, self.n_levels):
            _, ids = torch.unique(tokens[:, :lvl], dim=0, return_inverse=True)
            prefixes.append(ids)
        self._tables = {"tokens": tokens, "prefix": torch.stack(prefixes, dim=1)}  # both [n_items, n_levels]
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
        logits = self.teacher(items)  # [B, K, n_items]; position k-1 scores item k
        b, own, lvl = b[has], own[has], lvl[has]
        target_item = items[b, own]
        q = torch.softmax(logits[b, own - 1].float() / self.temperature, dim=-1)  # [M, n_items]
        for level_l in range(self.n_levels):
            sel = (lvl == level_l).nonzero(as_tuple=True)[0]
            if len(sel) == 0:
                continue
            prefix = tabs["prefix"][:, level_l]
            same = prefix[None, :] == prefix[target_item[sel]][:, None]  # items on the observed path
            mass = q[sel] * same
            dist = torch.zeros(len(sel), n_logits, device=device)
            dist.scatter_add_(1, tabs["tokens"][:, level_l].expand(len(sel), -1), mass)
            targets[sel] = dist / dist.sum(1, keepdim=True)
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


def sasrec_teacher(model) -> TeacherFn:
    """The :data:`TeacherFn` of a trained :class:`agrec.baselines.sasrec.SASRec` (evaluation mode, no gradient).
    Rows longer than its ``max_seq_length`` are refused (the LM's windows are checked against it up front)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)

    @torch.no_grad()
    def logits(items: torch.Tensor) -> torch.Tensor:
        if items.shape[1] > model.max_seq_length:
            raise ValueError(
                f"{items.shape[1]} items in a row, more than SASRec's max_seq_length {model.max_seq_length}"
            )
        seq = (items + 1).clamp(min=0).to(model.device)  # model ids: 0 = padding (right-padded, causal: harmless)
        return model.item_logits(model(seq)).to(items.device)

    return logits
