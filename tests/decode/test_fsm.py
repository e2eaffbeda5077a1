import math

import numpy as np
import pytest
import torch

from agrec.decode import OFF, ItemTrie, RankableFSM
from agrec.errors import AgrecError

# Level tokens: a = 10.., b = 20.., c = 30..  Items 0-3 are the user's GNN top-4 with w = .4 .3 .2 .1.
# Items 0, 1 share the prefix (10, 20); item 2 shares (10); item 3 shares only the b-token 20 with items 0, 1.
TOKENS = np.array([[10, 20, 30], [10, 20, 31], [10, 21, 32], [11, 20, 33], [11, 22, 34], [12, 23, 35]])
W = [0.4, 0.3, 0.2, 0.1]


def build(agg="sum", state="prefix", scores=None, items=None, tau=1.0):
    trie = ItemTrie.build(TOKENS)
    items = torch.tensor(items if items is not None else [[0, 1, 2, 3]])
    scores = torch.tensor(scores if scores is not None else [[math.log(w) for w in W]])
    return RankableFSM.build(trie, items, scores, tau=tau, agg=agg, state=state)


def approx(d, expect):
    assert d is not None and set(d) == set(expect), (d, expect)
    for k, v in expect.items():
        assert d[k] == pytest.approx(v, abs=1e-6), (k, d[k], v)


def test_sum_aggregation_hand_computed():
    f = build("sum")
    approx(f.distribution(0, []), {10: 0.9, 11: 0.1})
    approx(f.distribution(0, [10]), {20: 7 / 9, 21: 2 / 9})
    approx(f.distribution(0, [10, 20]), {30: 4 / 7, 31: 3 / 7})
    approx(f.distribution(0, [10, 21]), {32: 1.0})
    approx(f.distribution(0, [11]), {20: 1.0})
    approx(f.distribution(0, [11, 20]), {33: 1.0})
    assert f.distribution(0, [12]) is None and f.distribution(0, [11, 22]) is None


def test_sum_path_product_is_the_item_weight():
    f = build("sum")
    for item, w in enumerate(W):
        path = TOKENS[item].tolist()
        prod = math.prod(f.distribution(0, path[:d])[path[d]] for d in range(3))
        assert prod == pytest.approx(w, abs=1e-6)


def test_max_aggregation_hand_computed():
    f = build("max")
    approx(f.distribution(0, []), {10: 0.4 / 0.5, 11: 0.1 / 0.5})
    approx(f.distribution(0, [10]), {20: 0.4 / 0.6, 21: 0.2 / 0.6})
    approx(f.distribution(0, [10, 20]), {30: 4 / 7, 31: 3 / 7})
    # the path product no longer equals w: item 0 gets .8 * 2/3 * 4/7 = .305, not .4
    assert 0.8 * (2 / 3) * (4 / 7) == pytest.approx(0.3047619, abs=1e-6)


def test_last_token_state_mixes_prefixes_that_share_a_token():
    f = build("sum", state="last_token")
    approx(f.distribution(0, []), {10: 0.9, 11: 0.1})
    approx(f.distribution(0, [10]), {20: 7 / 9, 21: 2 / 9})
    # after (11, 20) the prefix FSM knows only item 3; the released code's state "last token = 20" holds items
    # 0, 1 and 3: .4/.8, .3/.8, .1/.8
    approx(f.distribution(0, [11, 20]), {30: 0.5, 31: 0.375, 33: 0.125})
    approx(build("sum").distribution(0, [11, 20]), {33: 1.0})
    # off the FSM after 12, back on it with 20 (released code); the prefix FSM stays off
    assert f.distribution(0, [12]) is None
    approx(f.distribution(0, [12, 20]), {30: 0.5, 31: 0.375, 33: 0.125})
    assert build("sum").distribution(0, [12, 20]) is None


def test_weights_floor_and_off_state():
    f = build("sum")
    root = f.initial_state(2)
    root[0, 1] = OFF
    p = f.weights(root, 0, torch.tensor([[[10, 11, 12], [10, 11, 12]]]))
    assert p[0, 0].tolist() == pytest.approx([0.9, 0.1, 1e-5])
    assert p[0, 1].tolist() == pytest.approx([1e-5, 1e-5, 1e-5])      # an off beam only sees the floor


def test_next_state_and_is_final():
    f = build("sum")
    s = f.initial_state(3)                                            # beams follow items 0, 3 and a non-top item
    for d, toks in enumerate([[10, 11, 12], [20, 20, 23], [30, 33, 35]]):
        assert not f.is_final(s).any()
        s = f.next_state(s, d, torch.tensor([toks]))
    assert f.is_final(s).tolist() == [[True, True, False]]
    assert s[0, 2] == OFF
    with pytest.raises(AgrecError, match="depth must be in 0..2"):
        f.next_state(s, 3, torch.tensor([[30, 30, 30]]))


def test_graph_logits_released_code_semantics():
    f = build("max", scores=[[4.0, 3.0, 2.0, -1.0]])
    s = f.initial_state(1)
    g = f.graph_logits(s, 0, torch.tensor([[[10, 11, 12]]]))
    # max of raw scores through the token, floored at 1e-5 (released code initialises to 1e-5 and keeps the max)
    assert g[0, 0].tolist() == pytest.approx([4.0, 1e-5, 1e-5])
    s1 = f.next_state(s, 0, torch.tensor([[10]]))
    assert f.graph_logits(s1, 1, torch.tensor([[[20, 21, 22]]]))[0, 0].tolist() == pytest.approx([4.0, 2.0, 1e-5])
    fs = build("sum", scores=[[4.0, 3.0, 2.0, -1.0]])
    assert fs.graph_logits(s, 0, torch.tensor([[[10, 11]]]))[0, 0].tolist() == pytest.approx([9.0, -1.0])


def test_tau_and_padding_items():
    f = build("sum", tau=2.0)
    r = np.sqrt(W) / np.sqrt(W).sum()                                  # softmax(log w / 2) = sqrt(w) normalised
    approx(f.distribution(0, []), {10: r[:3].sum(), 11: r[3]})
    g = build("sum", items=[[0, 1, 2, 3], [5, -1, -1, -1]], scores=[[math.log(w) for w in W], [0.0, 0, 0, 0]])
    approx(g.distribution(1, []), {12: 1.0})
    approx(g.distribution(1, [12, 23]), {35: 1.0})
    assert g.weight[1].tolist() == [1.0, 0.0, 0.0, 0.0]
    approx(g.select([1]).distribution(0, [12]), {23: 1.0})


def test_bad_inputs_are_refused():
    with pytest.raises(AgrecError, match=r"top_items\[0\] lists item 1 twice"):
        build(items=[[0, 1, 1, 3]])
    with pytest.raises(AgrecError, match=r"top_items\[0, 3\] = 6 is not an item id"):
        build(items=[[0, 1, 2, 6]])
    with pytest.raises(AgrecError, match="both be"):
        build(scores=[[1.0, 2.0]])
    with pytest.raises(AgrecError, match="not finite"):
        build(scores=[[1.0, float("nan"), 0.0, 0.0]])
