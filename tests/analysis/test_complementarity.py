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


def test_breakdown_by_activity_and_popularity():
    from agrec.analysis.complementarity import complementarity_breakdown, complementarity_figure, target_popularity

    train = [np.array([0, 1]), np.array([1, 2, 3]), np.array([1]), np.array([0, 2, 4, 5])]
    targets = np.array([1, 0, 5, 3])
    pop = target_popularity(train, targets, n_items=6)
    np.testing.assert_array_equal(pop, [3, 2, 1, 1])       # item 1 thrice, item 0 twice, items 5 and 3 once
    lm = np.array([[1, 9], [9, 9], [5, 9], [9, 9]])        # hits users 0, 2
    gnn = np.array([[9, 1], [0, 9], [9, 9], [9, 9]])       # hits users 0, 1
    lengths = np.array([2, 3, 1, 4])
    out = complementarity_breakdown(lm, gnn, targets, lengths, pop, k=2, activity_buckets=2, popularity_buckets=2)
    assert out["overall"] == {"LLM only": 1, "GNN only": 1, "both": 1, "neither": 1}
    act = out["by_activity"]                                # quantile edges [1, 2, 5): {1} and {2, 3, 4}
    assert act["history length"].tolist() == ["[1, 2)", "[2, 5)"]
    assert act[["users", "LLM only", "GNN only", "both", "neither"]].values.tolist() == [[1, 1, 0, 0, 0],
                                                                                         [3, 0, 1, 1, 1]]
    popdf = out["by_popularity"]                            # edges [1, 4): one bucket (median = min)
    assert popdf["users"].sum() == 4
    fig = complementarity_figure(out["overall"], act, popdf)
    overall_ax, act_ax, pop_ax = fig.axes
    assert [p.get_height() for p in overall_ax.patches] == [1, 1, 1, 1]       # one user in each group
    assert [t.get_text() for t in overall_ax.texts] == ["1\n(25%)"] * 4
    # the activity panel stacks each bucket's group shares: bucket [1, 2) is all "LLM only", [2, 5) a third each
    # of GNN only / both / neither (bars are drawn group by group, bucket by bucket)
    heights = [round(p.get_height(), 6) for p in act_ax.patches]
    assert heights == [1.0, 0.0, 0.0, round(1 / 3, 6), 0.0, round(1 / 3, 6), 0.0, round(1 / 3, 6)]
    assert [t.get_text() for t in act_ax.get_xticklabels()] == ["[1, 2)\nn=1", "[2, 5)\nn=3"]
    assert sum(p.get_height() for p in pop_ax.patches) == pytest.approx(1.0)   # one bucket: shares add up to 1
