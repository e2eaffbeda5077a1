"""Two scorers steering one FSM: a weighted mixture of their top-n distributions.

The FSM of a scorer (:mod:`agrec.decode.fsm`) weights the user's top-n items by ``w = softmax(scores / tau)`` and,
with sum aggregation, factorises exactly that distribution over the items' code paths. Fusing two scorers A and
B therefore only needs one ranking whose softmax is their mixture:

    w(v) = weight * softmax_A(v) + (1 - weight) * softmax_B(v)

over the union of A's and B's top-n items (an item outside a scorer's top n gets nothing from it). The fused
ranking keeps the n items of largest w, best first, with ``scores = log w``: at tau = 1 the FSM's weights are the
mixture renormalised over those n items; another tau tempers the mixture as it tempers a single scorer. The weight
is chosen on validation with α and τ (``evaluation.fuse``, ``evaluation.fusion_weights``).
"""

from __future__ import annotations

import torch

from agrec.decode.beam import DecodeResult


def fusion_name(a: str, b: str) -> str:
    """The fused scorer's name in rows: ``lightgcn+sasrec``."""
    return f"{a}+{b}"


def fuse_rankings(a: DecodeResult, b: DecodeResult, weight: float, top_n: int, depth: int) -> DecodeResult:
    """The fused top-``top_n`` ranking of two scorers' rankings of the same users.

    Args:
        a: ``items [U, >= top_n]`` (-1 pads) and ``scores [U, >= top_n]`` (-inf pads) of the first scorer, best
            first, as :func:`agrec.decode.evaluate.scorer_rankings` returns them.
        b: the same for the second scorer.
        weight: the mixture weight of ``a`` in (0, 1).
        top_n: how many of each scorer's items enter the mixture, and how many fused items are kept.
        depth: the width of the result (>= top_n; padded with -1 / -inf), so that it can stand where a scorer's
            rankings stand.
    Returns:
        ``DecodeResult(items [U, depth], scores [U, depth])``: the ``top_n`` items of largest mixture weight, best
        first (ties to the lower item id), ``scores = log w``.
    """
    U = a.items.shape[0]
    ia, ib = a.items[:, :top_n].long(), b.items[:, :top_n].long()
    wa = torch.softmax(a.scores[:, :top_n].double(), dim=1).nan_to_num(0.0)  # a user without candidates: all pads
    wb = torch.softmax(b.scores[:, :top_n].double(), dim=1).nan_to_num(0.0)
    items = torch.cat([ia, ib], dim=1)  # [U, 2n], an item may appear twice
    w = torch.cat([weight * wa, (1.0 - weight) * wb], dim=1)
    w = torch.where(items >= 0, w, torch.zeros_like(w))
    # sum the two contributions of an item listed by both: sort by item, add runs of equal ids
    order = torch.argsort(items, dim=1, stable=True)
    it_sorted, w_sorted = items.gather(1, order), w.gather(1, order)
    same_as_next = torch.zeros_like(it_sorted, dtype=torch.bool)
    same_as_next[:, :-1] = it_sorted[:, :-1] == it_sorted[:, 1:]
    w_total = w_sorted.clone()
    w_total[:, :-1] += torch.where(same_as_next[:, :-1], w_sorted[:, 1:], torch.zeros_like(w_sorted[:, 1:]))
    keep = ~torch.cat([torch.zeros(U, 1, dtype=torch.bool), same_as_next[:, :-1]], dim=1) & (it_sorted >= 0)
    w_total = torch.where(keep, w_total, torch.full_like(w_total, -1.0))  # duplicates and pads sink
    # best first; equal weights to the lower item id (the stable sort keeps the id order of it_sorted)
    rank = torch.argsort(-w_total, dim=1, stable=True)[:, :top_n]
    out_items = it_sorted.gather(1, rank)
    out_w = w_total.gather(1, rank)
    valid = out_w > 0
    items_out = torch.full((U, depth), -1, dtype=a.items.dtype)
    scores_out = torch.full((U, depth), float("-inf"), dtype=a.scores.dtype)
    items_out[:, :top_n] = torch.where(valid, out_items, torch.full_like(out_items, -1)).to(a.items.dtype)
    scores_out[:, :top_n] = torch.where(valid, out_w.clamp_min(1e-300).log(), torch.full_like(out_w, float("-inf"))).to(
        a.scores.dtype
    )
    return DecodeResult(items=items_out, scores=scores_out)
