"""Which validation users a study may read (agrec.decode.evaluate.unselected_users)."""

import numpy as np
import pytest

from agrec.config import load_profile
from agrec.decode.evaluate import unselected_users, validation_users
from tests.conftest import CI_PROFILE


def profile(**sets):
    return load_profile(CI_PROFILE, {"seed": 11, **sets})


def test_the_users_are_outside_both_selection_samples_drawn_with_the_seed():
    p = profile(**{"evaluation.select_users": 30, "lm.select": "ndcg", "lm.select_users": 20})
    alpha = validation_users(100, 30, 11)
    epoch = validation_users(100, 20, 11)
    users = unselected_users(p, 100, 25)
    assert len(users) == 25 and np.all(np.diff(users) > 0)
    assert not set(users) & (set(alpha) | set(epoch))
    pool = np.setdiff1d(np.arange(100), np.concatenate([alpha, epoch]))
    np.testing.assert_array_equal(users, np.sort(np.random.default_rng(11).choice(pool, 25, replace=False)))
    np.testing.assert_array_equal(users, unselected_users(p, 100, 25))  # the same users on every call


def test_asking_for_more_than_are_left_gives_all_that_are_left():
    p = profile(**{"evaluation.select_users": 30, "lm.select": "ndcg", "lm.select_users": 20})
    left = unselected_users(p, 100, 1000)
    assert len(left) == 100 - len(set(validation_users(100, 30, 11)) | set(validation_users(100, 20, 11)))


@pytest.mark.parametrize(
    "sets, expected",
    [
        # α chosen on every validation user (no sample): no user is outside it, so it excludes none (the caller
        # says so, as benchmarks/beam_study.py does)
        ({"evaluation.select_users": None, "lm.select": "last"}, 100),
        # no α sample reaches all 100, and the LM keeps its last epoch: every user is free
        ({"evaluation.select_users": 500, "lm.select": "last"}, 100),
        # the LM's sample is drawn over the users it trained on (lm.max_users), not over all of them
        ({"evaluation.select_users": 500, "lm.select": "ndcg", "lm.select_users": 10, "lm.max_users": 40}, 90),
    ],
)
def test_which_samples_count(sets, expected):
    assert len(unselected_users(profile(**sets), 100, 1000)) == expected
