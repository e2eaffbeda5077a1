import math

import numpy as np
import pytest

from agrec.metrics import evaluate_rankings, hit_rate_at_k, ndcg_at_k, target_ranks


def test_hand_computed_hr_and_ndcg():
    # user 0: target at rank 1; user 1: rank 3; user 2: rank 7; user 3: absent.
    rankings = [[5, 1, 2, 3, 4, 6, 7], [1, 2, 9, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6, 8], [1, 2, 3]]
    targets = [5, 9, 8, 4]
    np.testing.assert_array_equal(target_ranks(rankings, targets), [1, 3, 7, 0])
    m = evaluate_rankings(rankings, targets, ks=(5, 10))
    assert m["HR@5"] == pytest.approx(2 / 4)
    assert m["HR@10"] == pytest.approx(3 / 4)
    assert m["NDCG@5"] == pytest.approx((1.0 + 1 / math.log2(4)) / 4)       # (1 + 0.5) / 4 = 0.375
    assert m["NDCG@10"] == pytest.approx((1.0 + 0.5 + 1 / math.log2(8)) / 4)  # (1 + .5 + 1/3) / 4
    assert m["NDCG@5"] == pytest.approx(0.375)


def test_short_lists_count_as_misses_not_skipped():
    # User 1 produced only two items (a beam search that ran dry): it is a miss, still averaged.
    rankings = [[3, 1], [2]]
    targets = [1, 7]
    assert hit_rate_at_k(target_ranks(rankings, targets), 10) == pytest.approx(0.5)
    assert ndcg_at_k(target_ranks(rankings, targets), 1) == 0.0
    assert ndcg_at_k(target_ranks(rankings, targets), 2) == pytest.approx(0.5 * (1 / math.log2(3)))


def test_padded_array_matches_ragged_lists():
    ragged = [[4, 2, 0], [1], [0, 1, 2]]
    padded = np.array([[4, 2, 0], [1, -1, -1], [0, 1, 2]])
    targets = np.array([0, 2, 1])
    np.testing.assert_array_equal(target_ranks(ragged, targets), [3, 0, 2])
    np.testing.assert_array_equal(target_ranks(padded, targets), [3, 0, 2])


def test_padding_never_matches_a_negative_target():
    assert target_ranks(np.array([[1, -1]]), np.array([-1]))[0] == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="2 rankings for 1 targets"):
        target_ranks([[1], [2]], [1])
    with pytest.raises(ValueError, match="k must be positive"):
        hit_rate_at_k(np.array([1]), 0)
    with pytest.raises(ValueError, match="no users"):
        ndcg_at_k(np.array([], dtype=int), 5)
