"""agrec.decode.fusion: the mixture of two scorers' top-n distributions, checked against hand-computed values."""

import math

import torch

from agrec.decode.beam import DecodeResult
from agrec.decode.fusion import fuse_rankings


def _r(items, scores):
    return DecodeResult(items=torch.tensor(items, dtype=torch.long), scores=torch.tensor(scores, dtype=torch.float32))


def test_mixture_of_two_top_lists_by_hand():
    # A's top 2: items 5 (score ln 3) and 7 (ln 1) -> softmax 0.75, 0.25
    # B's top 2: items 7 (ln 1) and 9 (ln 1)       -> softmax 0.5, 0.5
    a = _r([[5, 7]], [[math.log(3), 0.0]])
    b = _r([[7, 9]], [[0.0, 0.0]])
    out = fuse_rankings(a, b, weight=0.5, top_n=2, depth=4)
    # w: 5 -> .375, 7 -> .125 + .25 = .375, 9 -> .25; ties to the lower id: [5, 7]
    assert out.items.tolist() == [[5, 7, -1, -1]]
    assert torch.allclose(out.scores[0, :2].exp().double(), torch.tensor([0.375, 0.375], dtype=torch.float64))
    assert out.scores[0, 2:].tolist() == [float("-inf")] * 2
    out = fuse_rankings(a, b, weight=0.25, top_n=3, depth=3)
    # w: 5 -> .1875, 7 -> .0625 + .375 = .4375, 9 -> .375
    assert out.items.tolist() == [[7, 9, 5]]
    assert torch.allclose(out.scores[0].exp().double(), torch.tensor([0.4375, 0.375, 0.1875], dtype=torch.float64))


def test_fsm_weights_at_tau_one_are_the_renormalised_mixture_and_pads_stay_pads():
    a = _r([[1, 2, 3], [4, -1, -1]], [[2.0, 1.0, 0.0], [0.5, float("-inf"), float("-inf")]])
    b = _r([[3, 2, 1], [-1, -1, -1]], [[1.0, 1.0, 1.0], [float("-inf")] * 3])
    out = fuse_rankings(a, b, weight=0.6, top_n=3, depth=5)
    sa = torch.softmax(torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64), 0)
    mix = {1: 0.6 * sa[0] + 0.4 / 3, 2: 0.6 * sa[1] + 0.4 / 3, 3: 0.6 * sa[2] + 0.4 / 3}
    want = sorted(mix, key=lambda i: -mix[i])
    assert out.items[0, :3].tolist() == want
    w = torch.softmax(out.scores[0, :3].double(), 0)
    total = sum(mix.values())
    assert torch.allclose(w, torch.tensor([mix[i] / total for i in want], dtype=torch.float64))
    # a user B has no candidates for: A's item alone, with its whole weight share, the rest padded
    assert out.items[1].tolist() == [4, -1, -1, -1, -1]
    assert math.isclose(out.scores[1, 0].exp().item(), 0.6, rel_tol=1e-6)
