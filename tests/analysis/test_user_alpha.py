"""Per-user α by a signal, chosen on validation, against the one global α: buckets, choices and outcomes by hand."""

from __future__ import annotations

import numpy as np
import pytest

from agrec.analysis.user_alpha import (
    Rankings,
    SignalInputs,
    bucket_edges,
    bucket_of,
    grid_row_name,
    mixed,
    per_bucket_alpha,
    signal_study,
)
from agrec.errors import AgrecError


def test_buckets_split_at_validation_quantiles():
    edges = bucket_edges(np.array([1, 2, 3, 4, 5, 6]), 3)
    # np.quantile's linear rule: position 5/3 -> 2 + 2/3, position 10/3 -> 4 + 1/3
    assert edges == pytest.approx([8 / 3, 13 / 3])
    assert bucket_of(np.array([1, 2, 3, 4, 5, 6, 100, -5]), edges).tolist() == [0, 0, 1, 1, 2, 2, 2, 0]
    # a signal with one value gives one bucket, not three empty ones
    assert bucket_edges(np.array([2, 2, 2, 2]), 3).tolist() == [2.0]
    assert bucket_of(np.array([2, 2]), np.array([2.0])).tolist() == [0, 0]
    with pytest.raises(ValueError, match="n_buckets must be >= 1"):
        bucket_edges(np.array([1.0]), 0)


def test_each_bucket_takes_its_best_alpha_in_grid_order_and_an_empty_one_the_fallback():
    gains = {
        0.0: np.array([1.0, 1.0, 0.0, 0.0]),
        0.5: np.array([1.0, 1.0, 0.5, 0.0]),
        1.0: np.array([0.0, 0.0, 1.0, 1.0]),
    }
    buckets = np.array([0, 0, 1, 1])
    # bucket 0: α 0 and 0.5 tie at 1.0 -> the first in grid order; bucket 1: α 1 (mean 1.0); bucket 2 is empty
    assert per_bucket_alpha(gains, buckets, 3, fallback=0.5) == [0.0, 1.0, 0.5]
    assert mixed(gains, buckets, [0.0, 1.0]).tolist() == [1.0, 1.0, 1.0, 1.0]


def _rankings(users, targets, top):
    items = np.array([[t, 90, 91] for t in top])
    return Rankings(np.array(users), np.array(targets), items, -np.arange(len(users) * 3, dtype=float).reshape(-1, 3))


def test_signal_study_beats_the_global_alpha_where_short_and_long_histories_want_different_alphas():
    # 4 validation and 4 test users; the LM (α 0) hits short-history users, the scorer (α 1) long-history ones
    users, targets = [0, 1, 2, 3], [10, 11, 12, 13]
    hit_short = [10, 11, 0, 0]  # a ranking's first item: the target for users 0 and 1 only
    hit_long = [0, 0, 12, 13]
    grid = {
        a: {t: _rankings(users, targets, top) for t in ("valid", "test")}
        for a, top in ((0.0, hit_short), (1.0, hit_long))
    }
    lm, sc = grid[0.0]["valid"], grid[1.0]["valid"]
    inputs = {
        "valid": SignalInputs(np.array([1, 2, 8, 9]), lm, sc),
        "test": SignalInputs(np.array([2, 3, 9, 10]), lm, sc),
    }
    table = signal_study(grid, inputs, global_alpha=0.0, n_buckets=2, signals=["history length"])
    row = table.iloc[0]
    assert row["alpha per bucket"] == [0.0, 1.0]
    assert row["edges"] == [5.0]
    assert row["test users per bucket"] == [2, 2]
    # every target at rank 1 (gain 1) with the per-bucket α; the global α 0 hits half of them
    assert row["per-bucket α NDCG@10"] == 1.0 and row["global α NDCG@10"] == 0.5
    assert row["per-bucket α HR@10"] == 1.0 and row["global α HR@10"] == 0.5
    assert row["p HR@10"] == pytest.approx(0.5)  # exact McNemar: b = 2, c = 0 -> 2 * 0.5**2
    with pytest.raises(ValueError, match="global α 0.3 has no rankings"):
        signal_study(grid, inputs, global_alpha=0.3)


def test_rankings_align_to_a_user_order_and_name_a_missing_user():
    r = _rankings([5, 7], [1, 2], [1, 0])
    a = r.aligned(np.array([7, 5]))
    assert a.users.tolist() == [7, 5] and a.targets.tolist() == [2, 1] and a.items[:, 0].tolist() == [0, 1]
    with pytest.raises(AgrecError, match="1 user\\(s\\) have no ranking in this row \\(e.g. user 9\\)"):
        r.aligned(np.array([5, 9]))


def test_grid_row_names_are_the_decode_stages():
    assert grid_row_name("lightgcn", "lightgcn", 0.0, 1.0) == "w/o Graph"
    assert grid_row_name("lightgcn", "lightgcn", 0.2, 1.0) == "α=0.2 τ=1"
    assert grid_row_name("sasrec", "lightgcn", 0.4, 2.0) == "AGRec (sasrec) α=0.4 τ=2"
