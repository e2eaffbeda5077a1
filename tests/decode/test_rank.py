import numpy as np
import pytest
import torch

from agrec.decode import rank_by_scores, top_n_items
from agrec.errors import AgrecError


def test_rank_by_scores_excludes_history_and_breaks_ties_by_item_id():
    s = torch.tensor([[0.1, 0.9, 0.5, 0.9, 0.3],
                      [1.0, 2.0, 3.0, 4.0, 5.0]])
    r = rank_by_scores(s, k=3, exclude=[np.array([1]), None])
    assert r.items.tolist() == [[3, 2, 4], [4, 3, 2]]
    torch.testing.assert_close(r.scores, torch.tensor([[0.9, 0.5, 0.3], [5.0, 4.0, 3.0]]))
    r = rank_by_scores(s, k=3)
    assert r.items[0].tolist() == [1, 3, 2]            # equal scores: the lower item id first


def test_k_beyond_the_remaining_items_is_padded():
    s = torch.tensor([[0.1, 0.9, 0.5]])
    r = rank_by_scores(s, k=5, exclude=[[0, 2]])
    assert r.items.tolist() == [[1, -1, -1, -1, -1]]
    assert r.scores[0, 0] == pytest.approx(0.9) and torch.isinf(r.scores[0, 1:]).all()


def test_top_n_items_feed_the_fsm():
    s = torch.arange(12.0).view(2, 6)
    items, scores = top_n_items(s, n=2, exclude=[[5], []])
    assert items.tolist() == [[4, 3], [5, 4]] and scores.tolist() == [[4.0, 3.0], [11.0, 10.0]]


def test_bad_inputs():
    with pytest.raises(AgrecError, match=r"exclude\[0\] holds item 7"):
        rank_by_scores(torch.zeros(1, 3), 2, exclude=[[7]])
    with pytest.raises(AgrecError, match="NaN"):
        rank_by_scores(torch.tensor([[0.0, float("nan")]]), 1)
    with pytest.raises(AgrecError, match=r"\[n_users, n_items\]"):
        rank_by_scores(torch.zeros(3), 1)


def test_top_k_equals_the_full_stable_sort_with_ties_and_exclusions():
    g = torch.Generator().manual_seed(0)
    for trial in range(20):
        U, n = 7, 50
        s = torch.randint(0, 6, (U, n), generator=g).float()          # many ties
        s[0] = 1.0                                                    # a row of one value
        exclude = [np.arange(0, n, 2), None, np.array([], dtype=np.int64), np.arange(n - 3), np.array([3, 3]),
                   np.arange(n), np.array([49])]
        for k in (1, 5, 20, 50, 60):
            r = rank_by_scores(s, k, exclude)
            ref = s.clone()
            for u, ex in enumerate(exclude):
                if ex is not None and len(ex):
                    ref[u, torch.as_tensor(ex)] = float("-inf")
            top, idx = torch.sort(ref, dim=1, descending=True, stable=True)
            kk = min(k, n)
            expected = torch.where(top[:, :kk] > float("-inf"), idx[:, :kk], -1)
            assert torch.equal(r.items[:, :kk], expected) and torch.equal(r.scores[:, :kk], top[:, :kk])
            assert (r.items[:, kk:] == -1).all()
    assert rank_by_scores(torch.zeros(2, 4), 2, [np.arange(4), [1]]).items.tolist() == [[-1, -1], [0, 2]]
