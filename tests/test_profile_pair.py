"""benchmarks/profile_pair.py: one row of two profiles, paired per seed and pooled over seeds with the user as the
unit (hand-computed means and counts on four users)."""

from pathlib import Path

import numpy as np
import pytest

from agrec.decode.outcomes import Outcomes
from agrec.errors import AgrecError
from benchmarks.profile_pair import paired_rows

USERS = np.array([3, 5, 7, 9])
TARGETS = np.array([10, 11, 12, 13])


def outcomes(seed: int, ranks: list[int], users: np.ndarray = USERS, row: str = "w/o Graph") -> Outcomes:
    return Outcomes(
        seed=seed,
        config={"data": {"dataset": "toy"}},
        decode_key="k",
        protocol=2,
        chosen={},
        rows=[{"name": row}],
        users=users,
        targets=TARGETS,
        ranks={row: np.array(ranks, dtype=np.int32)},
        list_length=20,
        path=Path(f"/reports/{seed}/results/decode_outcomes.npz"),
    )


def pick(results: list[dict], seed, metric: str):
    return next(r["test"] for r in results if r["seed"] == seed and r["metric"] == metric)


def test_per_seed_and_pooled_over_the_common_seeds():
    a = {1: outcomes(1, [1, 0, 3, 12]), 2: outcomes(2, [1, 2, 0, 0]), 4: outcomes(4, [1, 1, 1, 1])}
    b = {1: outcomes(1, [0, 0, 3, 1]), 2: outcomes(2, [1, 0, 6, 0])}
    seeds, results = paired_rows(a, b, ["w/o Graph"])
    assert seeds == [1, 2]  # seed 4 only in A
    t = pick(results, 1, "HR@10")
    # A's hits at @10: 1, 0, 1, 0; B's: 0, 0, 1, 1 -> one user better, one worse
    assert (t.reference_mean, t.other_mean, t.n_better, t.n_worse) == (0.5, 0.5, 1, 1)
    t = pick(results, 1, "NDCG@5")
    # A: 1 + 1/log2(4) = 1.5 over 4 users; B: 1/log2(4) + 1 = 1.5
    assert t.reference_mean == pytest.approx(1.5 / 4) and t.other_mean == pytest.approx(1.5 / 4)
    t = pick(results, "pooled", "HR@5")
    # per user, averaged over seeds 1 and 2: A (1 + 1)/2, (0 + 1)/2, (1 + 0)/2, 0; B (0 + 1)/2, 0, (1 + 0)/2, (1 + 0)/2
    assert t.n_seeds == 2 and t.n_users == 4
    assert t.reference_mean == pytest.approx(2.0 / 4) and t.other_mean == pytest.approx(1.5 / 4)
    assert (t.n_better, t.n_worse) == (2, 1)
    assert {r["seed"] for r in results} == {1, 2, "pooled"}


def test_profiles_over_other_users_are_refused():
    a = {1: outcomes(1, [1, 0, 0, 0])}
    b = {1: outcomes(1, [1, 0, 0, 0], users=np.array([3, 5, 7, 8]))}
    with pytest.raises(AgrecError, match="seed 1: .* not the same test users"):
        paired_rows(a, b, ["w/o Graph"])


def test_a_missing_row_or_no_common_seed_is_named():
    a = {1: outcomes(1, [1, 0, 0, 0])}
    with pytest.raises(AgrecError, match="no row 'SASRec only'"):
        paired_rows(a, {1: outcomes(1, [1, 0, 0, 0])}, ["SASRec only"])
    with pytest.raises(AgrecError, match=r"no seed in common: A has \[1\], B has \[2\]"):
        paired_rows(a, {2: outcomes(2, [1, 0, 0, 0])}, ["w/o Graph"])
