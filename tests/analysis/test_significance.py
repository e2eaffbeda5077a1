import numpy as np
import pandas as pd
import pytest
from scipy import stats

from agrec.analysis.significance import (bootstrap_ci, decode_significance, mcnemar_exact, p_values_by_row,
                                         paired_test, parts_significance, user_gains, wilcoxon_p)
from agrec.decode.stage import DecodeReport, save_rankings
from agrec.errors import AgrecError
from agrec.metrics import evaluate_rankings


def _hits(b, c, both=0, neither=0):
    """Per-user hits of two rows with b users hit by the first only, c by the second only."""
    ref = np.array([1] * b + [0] * c + [1] * both + [0] * neither, dtype=float)
    oth = np.array([0] * b + [1] * c + [1] * both + [0] * neither, dtype=float)
    return ref, oth


def test_mcnemar_exact_known_value():
    # b=8, c=2: p = 2 * P(X <= 2 | n=10, 1/2) = 2 * (1 + 10 + 45) / 1024
    assert mcnemar_exact(8, 2) == pytest.approx(0.109375, abs=1e-12)
    assert mcnemar_exact(2, 8) == pytest.approx(0.109375, abs=1e-12)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32, abs=1e-12)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


def test_paired_test_hr_is_mcnemar_on_discordant_users():
    ref, oth = _hits(8, 2, both=30, neither=60)  # concordant users must not matter
    t = paired_test(ref, oth, "HR@10")
    assert (t.n_better, t.n_worse, t.n_users, t.n_seeds) == (8, 2, 100, 1)
    assert t.test == "McNemar exact"
    assert t.p_value == pytest.approx(0.109375, abs=1e-12)
    assert t.reference_mean == pytest.approx(0.38) and t.other_mean == pytest.approx(0.32)
    assert t.mean_diff == pytest.approx(0.06)
    assert t.ci_low is None
    with pytest.raises(ValueError, match="hits must be 0 or 1"):
        paired_test(ref * 0.5, oth, "HR@10")


def test_wilcoxon_hand_computed():
    # |d| ranks 1..5, negative rank sum W- = 3; subsets of {1..5} with sum <= 3: {}, {1}, {2}, {3}, {1,2}
    # exact two-sided p = 2 * 5 / 32
    assert wilcoxon_p(np.array([1.0, 2.0, -3.0, 4.0, 5.0])) == pytest.approx(0.3125, abs=1e-12)
    # zeros are dropped (they carry no sign): same p
    assert wilcoxon_p(np.array([0.0, 1.0, 2.0, -3.0, 0.0, 4.0, 5.0])) == pytest.approx(0.3125, abs=1e-12)
    assert wilcoxon_p(np.zeros(7)) == 1.0


def test_bootstrap_ci_reproducible_and_covers_mean():
    rng = np.random.default_rng(3)
    x = rng.random(200)
    y = x - 0.1 + 0.05 * rng.standard_normal(200)
    a = bootstrap_ci(x, y, n_resamples=2000, seed=7)
    b = bootstrap_ci(x, y, n_resamples=2000, seed=7)
    c = bootstrap_ci(x, y, n_resamples=2000, seed=8)
    assert a == b and a != c
    assert a[0] < np.mean(x - y) < a[1]
    assert 0.08 < a[0] < 0.1 < a[1] < 0.12
    # paired: the same interval as a one-sample bootstrap of the differences with the same resamples
    one = stats.bootstrap((x - y,), np.mean, n_resamples=2000, rng=np.random.default_rng(7), method="BCa")
    assert a == pytest.approx((one.confidence_interval.low, one.confidence_interval.high), rel=1e-9)
    # identical rows: the point interval, no warning about degenerate samples
    assert bootstrap_ci(x, x.copy()) == (0.0, 0.0)


def test_bootstrap_ci_equals_scipy_bca_across_batches():
    # Skewed per-user gains (mostly zero, as NDCG is), a non-default confidence, and more users than fit one
    # resample batch (4M values // 3,000 users = 1,333 resamples per batch): the closed-form jackknife must
    # give scipy's BCa interval from scipy's own draws.
    rng = np.random.default_rng(11)
    n = 3000
    x = (rng.random(n) < 0.12) / np.log2(rng.integers(2, 12, n))
    y = (rng.random(n) < 0.08) / np.log2(rng.integers(2, 12, n))
    lo, hi = bootstrap_ci(x, y, confidence=0.9, n_resamples=3000, seed=5)
    ref = stats.bootstrap((x, y), lambda a, b, axis=-1: np.mean(a - b, axis=axis), paired=True, vectorized=True,
                          n_resamples=3000, confidence_level=0.9, method="BCa", rng=np.random.default_rng(5),
                          batch=4_000_000 // n)
    assert (lo, hi) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), abs=1e-15)
    assert lo < np.mean(x - y) < hi
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(x, y, confidence=1.0)


def test_paired_test_ndcg_uses_wilcoxon_and_ci():
    ref = np.array([1.0, 0.5, 0.0, 0.63, 0.39, 0.0])
    oth = np.array([0.0, 0.5, 0.0, 0.5, 0.0, 0.43])
    t = paired_test(ref, oth, "NDCG@10", n_resamples=999, seed=1)
    assert t.test == "Wilcoxon signed-rank"
    assert (t.n_better, t.n_worse) == (3, 1)
    assert t.p_value == pytest.approx(stats.wilcoxon(ref - oth).pvalue)
    assert t.ci_low <= t.mean_diff <= t.ci_high
    with pytest.raises(ValueError, match="unknown metric"):
        paired_test(ref, oth, "MRR@10")


def test_pooling_averages_seeds_per_user():
    # 3 seeds, 100 users. Seed-persistent discordance (the same 8 vs 2 users in every seed) is the
    # same evidence as one seed: the pooled p must not shrink as if there were 24 vs 6 independent pairs.
    ref, oth = _hits(8, 2, both=10, neither=80)
    pooled = paired_test(np.stack([ref] * 3), np.stack([oth] * 3), "HR@5")
    assert pooled.n_seeds == 3 and pooled.test.startswith("sign test")
    assert (pooled.n_better, pooled.n_worse) == (8, 2)
    assert pooled.p_value == pytest.approx(0.109375, abs=1e-12)
    # constructed per-seed data: user 0 better in 2 of 3 seeds and worse in 1 (mean +1/3 -> better),
    # user 1 worse in 2 seeds, better in 1 (worse); user 2 better once, tied twice (better); user 3 tied.
    r = np.array([[1, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 1]], dtype=float)
    o = np.array([[0, 1, 0, 0], [0, 1, 0, 0], [1, 0, 0, 1]], dtype=float)
    t = paired_test(r, o, "HR@10")
    assert (t.n_better, t.n_worse) == (2, 1)
    assert t.p_value == pytest.approx(stats.binomtest(2, 3, 0.5).pvalue)
    assert t.mean_diff == pytest.approx(np.mean([1 / 3, -1 / 3, 1 / 3, 0]))
    nd = paired_test(r * 0.5, o * 0.5, "NDCG@10", n_resamples=999)
    assert nd.p_value == pytest.approx(stats.wilcoxon((r - o).mean(0) * 0.5).pvalue)
    with pytest.raises(ValueError, match="not aligned"):
        paired_test(r, o[:2], "HR@10")


def test_user_gains_match_evaluate_rankings():
    items = np.array([[3, 1, 2, -1], [0, 2, 4, 5], [9, 8, 7, 6]])
    targets = np.array([2, 0, 1])
    g = user_gains(items, targets, ks=[1, 3])
    assert g["HR@1"].tolist() == [0, 1, 0]
    assert g["HR@3"].tolist() == [1, 1, 0]
    assert g["NDCG@3"] == pytest.approx([0.5, 1.0, 0.0])
    ev = evaluate_rankings(items, targets, [1, 3])
    assert {k: float(v.mean()) for k, v in g.items()} == pytest.approx(ev)


def _fake_decode(folder, rows, users, targets):
    for name, items in rows.items():   # through the decode stage's writer
        save_rankings(folder, name, "test", users, targets, items, np.zeros(items.shape))
    return DecodeReport(rows=[{"name": n} for n in rows], curve=[], chosen={}, n_users=len(users), seconds=0.0,
                        folder=folder)


def test_decode_significance_from_saved_rankings(tmp_path):
    (tmp_path / "rankings").mkdir()
    users, targets = np.arange(10), np.arange(10)
    hit = np.stack([targets, targets + 100], 1)          # target at rank 1
    miss = np.stack([targets + 100, targets + 200], 1)
    agrec = np.where((users < 8)[:, None], hit, miss)    # users 0-7 hit
    lm = np.where((users >= 6)[:, None], hit, miss)      # users 6-9 hit: b = 6, c = 2
    dec = _fake_decode(tmp_path, {"w/o Graph": lm, "AGRec (lightgcn)": agrec}, users, targets)
    df = decode_significance(dec, "AGRec (lightgcn)", ks=[5], n_resamples=999)
    assert df["method"].tolist() == ["w/o Graph", "w/o Graph"]
    hr = df[df.metric == "HR@5"].iloc[0]
    assert (hr.n_better, hr.n_worse) == (6, 2)
    assert hr.p_value == pytest.approx(mcnemar_exact(6, 2))
    nd = df[df.metric == "NDCG@5"].iloc[0]
    assert nd.mean_diff == pytest.approx(0.4) and nd.ci_low <= 0.4 <= nd.ci_high
    with pytest.raises(AgrecError, match="no row 'AGRec \\(sgl\\)'"):
        decode_significance(dec, "AGRec (sgl)")
    # rows ranked for different users cannot be paired
    np.savez(tmp_path / "rankings" / "w_o_graph__test.npz", users=users + 1, targets=targets, items=lm,
             scores=np.zeros(lm.shape))
    with pytest.raises(AgrecError, match="different users"):
        decode_significance(dec, "AGRec (lightgcn)", ks=[5])


def test_parts_significance_tests_each_agrec_row_against_both_parts(tmp_path):
    (tmp_path / "rankings").mkdir()
    users, targets = np.arange(10), np.arange(10)
    hit = np.stack([targets, targets + 100], 1)
    miss = np.stack([targets + 100, targets + 200], 1)
    rows = {"w/o Graph": np.where((users >= 6)[:, None], hit, miss),            # users 6-9
            "GNN only (lightgcn)": np.where((users < 1)[:, None], hit, miss),   # user 0
            "AGRec (lightgcn)": np.where((users < 8)[:, None], hit, miss),      # users 0-7
            "AGRec [gate]": np.where((users >= 3)[:, None], hit, miss)}         # users 3-9
    dec = _fake_decode(tmp_path, rows, users, targets)
    both = ["w/o Graph", "GNN only (lightgcn)"]
    df = parts_significance(dec, {"AGRec (lightgcn)": both, "AGRec [gate]": both}, ks=[5], n_resamples=99)
    hr = df[df.metric == "HR@5"].set_index(["row", "method"])
    assert len(df) == 8  # 2 rows x 2 parts x 2 metrics, the variant never against the main row
    assert (hr.loc[("AGRec (lightgcn)", "w/o Graph"), ["n_better", "n_worse"]].tolist()) == [6, 2]
    assert (hr.loc[("AGRec [gate]", "w/o Graph"), ["n_better", "n_worse"]].tolist()) == [3, 0]
    assert (hr.loc[("AGRec [gate]", "GNN only (lightgcn)"), ["n_better", "n_worse"]].tolist()) == [7, 1]
    # the main row's tests against every row are reused, line for line, instead of recomputed
    main_vs_all = decode_significance(dec, "AGRec (lightgcn)", ks=[5], n_resamples=99)
    reused = parts_significance(dec, {"AGRec (lightgcn)": both, "AGRec [gate]": both}, ks=[5], n_resamples=99,
                                computed={"AGRec (lightgcn)": main_vs_all})
    pd.testing.assert_frame_equal(reused, df)
    p = p_values_by_row(df)
    assert p["AGRec [gate]"]["w/o Graph"]["HR@5"] == pytest.approx(mcnemar_exact(3, 0))
    assert set(p) == {"AGRec (lightgcn)", "AGRec [gate]"}
    with pytest.raises(AgrecError, match="no row 'SASRec only'"):
        parts_significance(dec, {"AGRec [gate]": ["SASRec only"]}, ks=[5])
