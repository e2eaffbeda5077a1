import numpy as np
import pytest

from agrec.analysis.complementarity import (complementarity, complementarity_by_bucket, hits_at_k,
                                            quantile_edges)


def test_counts_on_hand_built_rankings():
    lm = [[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 5, 9]]
    gnn = [[3, 2, 1], [9, 9, 9], [8, 0, 0], [2, 3, 4]]
    targets = [1, 5, 8, 0]
    h_lm = hits_at_k(lm, targets, k=2)      # user0 rank1, user1 rank2, user2 rank2, user3 miss
    h_gnn = hits_at_k(gnn, targets, k=2)    # user0 rank3 (miss @2), user1 miss, user2 rank1, user3 miss
    np.testing.assert_array_equal(h_lm, [True, True, True, False])
    np.testing.assert_array_equal(h_gnn, [False, False, True, False])
    assert complementarity(h_lm, h_gnn) == {"LLM only": 2, "GNN only": 0, "both": 1, "neither": 1}


def test_buckets_cover_every_user():
    h_lm = np.array([1, 0, 1, 0, 1], bool)
    h_gnn = np.array([1, 1, 0, 0, 0], bool)
    lengths = np.array([3, 10, 25, 4, 30])
    df = complementarity_by_bucket(h_lm, h_gnn, lengths, [0, 5, 20, 31], name="history")
    assert df["history"].tolist() == ["[0, 5)", "[5, 20)", "[20, 31)"]
    assert df["users"].tolist() == [2, 1, 2]
    assert df[["LLM only", "GNN only", "both", "neither"]].values.tolist() == [[0, 0, 1, 1], [0, 1, 0, 0],
                                                                               [2, 0, 0, 0]]
    with pytest.raises(ValueError, match="outside the bucket edges"):
        complementarity_by_bucket(h_lm, h_gnn, lengths, [0, 5, 20])


def test_quantile_edges_include_max():
    edges = quantile_edges(np.array([1, 2, 3, 4, 100]), 2)
    assert edges[0] == 1.0 and edges[-1] == 101.0
