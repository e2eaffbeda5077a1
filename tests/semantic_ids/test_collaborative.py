"""Collaborative item embeddings (agrec/semantic_ids/collaborative.py): known singular vectors of small graphs."""
import numpy as np
import pytest

from agrec.data.split import LeaveOneOutSplit
from agrec.errors import ConfigError, DataError
from agrec.semantic_ids.collaborative import collaborative_embeddings


def split_of(train, n_valid_item=0):
    """A split whose validation and test targets are all ``n_valid_item`` (never an interaction)."""
    n = len(train)
    return LeaveOneOutSplit(train=[np.asarray(t, dtype=np.int64) for t in train],
                            valid=np.full(n, n_valid_item, dtype=np.int64),
                            test=np.full(n, n_valid_item, dtype=np.int64))


def test_rank_one_is_the_top_singular_vector_of_the_normalised_graph():
    # users {0,1}, {1,2}, {1}: item degrees 1, 3, 1 over 5 edges. On a connected graph the top singular vector of
    # D_u^-1/2 R D_i^-1/2 is sqrt(d_i) / sqrt(|E|) with singular value 1, so the rank-1 vector V·Σ is exactly that.
    split = split_of([[0, 1], [1, 2], [1, 1]], n_valid_item=3)  # the repeat of item 1 counts once
    emb = collaborative_embeddings(split, n_items=4, dim=1, seed=0, normalize=False)
    assert emb.shape == (4, 1) and emb.dtype == np.float32
    expected = np.sqrt([1.0, 3.0, 1.0, 0.0]) / np.sqrt(5.0)
    np.testing.assert_allclose(np.abs(emb[:, 0]), expected, atol=1e-6)
    assert emb[0, 0] * emb[1, 0] > 0 and emb[3, 0] == 0.0  # one sign; item 3 is only a target: the zero vector
    unit = collaborative_embeddings(split, n_items=4, dim=1, seed=0)
    np.testing.assert_allclose(np.abs(unit[:, 0]), [1.0, 1.0, 1.0, 0.0], atol=1e-6)


def test_items_of_one_component_point_the_same_way_and_components_are_orthogonal():
    # two user-item components, {0,1,2} and {3,4}: both top singular values are 1, so a rank-2 embedding spans
    # the two components' top vectors; normalised, items in one component coincide and the two are orthogonal
    split = split_of([[0, 1], [1, 2], [0, 2], [3, 4], [4, 4, 3], [3]])
    emb = collaborative_embeddings(split, n_items=5, dim=2, seed=3)
    same = np.array([[1, 1, 1, 0, 0]] * 3 + [[0, 0, 0, 1, 1]] * 2, dtype=np.float64)
    np.testing.assert_allclose(emb.astype(np.float64) @ emb.T, same, atol=1e-6)


def test_full_rank_inner_products_are_the_normalised_co_occurrence():
    # users {0,1}, {1,2}, {2,3}, {0,1}: the last repeats the first, so R has rank 3 and a rank-3 V·Σ is exact:
    # emb @ emb.T = R̃ᵀ R̃, where R̃[u, i] = 1 / sqrt(d_u d_i) on every edge (Σ enters squared; V alone would give
    # the identity on the row space instead)
    train = [[0, 1], [1, 2], [2, 3], [0, 1]]
    r = np.zeros((4, 4))
    for u, items in enumerate(train):
        r[u, items] = 1.0
    rn = r / np.sqrt(r.sum(1, keepdims=True) * r.sum(0, keepdims=True))
    emb = collaborative_embeddings(split_of(train), 4, 3, seed=1, normalize=False).astype(np.float64)
    np.testing.assert_allclose(emb @ emb.T, rn.T @ rn, atol=1e-6)
    # items 0 (degree 2) and 1 (degree 3) share users 0 and 3 (degree 2 each): 2 x 1/sqrt(2·2) x 1/sqrt(2·3)
    assert np.isclose((rn.T @ rn)[0, 1], 1 / np.sqrt(6))


def test_same_seed_same_vectors():
    rng = np.random.default_rng(0)
    train = [rng.choice(30, size=6, replace=False) for _ in range(40)]
    a = collaborative_embeddings(split_of(train), 30, 8, seed=5)
    b = collaborative_embeddings(split_of(train), 30, 8, seed=5)
    np.testing.assert_array_equal(a, b)


def test_bad_dim_is_a_clear_error():
    split = split_of([[0, 1], [1, 2]])
    with pytest.raises(ConfigError, match="collaborative_dim must be >= 1"):
        collaborative_embeddings(split, 3, 0, seed=0)
    with pytest.raises(DataError, match=r"collaborative_dim = 2 needs more than 2 users and items .* 2 users and 3"):
        collaborative_embeddings(split, 3, 2, seed=0)
