"""De-duplication: extra level and re-assignment, hand-computed cases, and the bijection it guarantees."""
import numpy as np
import pytest

from agrec.semantic_ids import CodeTable
from agrec.semantic_ids.dedup import add_extra_level, make_collision_free, reassign_duplicates


def test_collision_free_table_is_left_alone():
    t = CodeTable(codes=[[0, 1], [1, 0]], codebook_sizes=(2, 2))
    out, rep = make_collision_free(t, "extra_level")
    assert out is t and not rep.extra_level and rep.collisions_before == 0
    forced = add_extra_level(t, force=True)
    assert forced.codebook_sizes == (2, 2, 1) and forced.codes[:, 2].tolist() == [0, 0]


def test_reassign_uses_distances_best_fit_keeps_code():
    # items 0, 1, 2 share (0, 1); last codebook of 4. By distance to code 1 the order is 2 (0), 1 (4), 0 (5):
    # item 2 keeps code 1, item 1 takes its nearest free code 0, then item 0 its nearest free code 3.
    t = CodeTable(codes=[[0, 1], [0, 1], [0, 1], [1, 2]], codebook_sizes=(2, 4))
    dist = np.array([[9, 5, 8, 1],
                     [2, 4, 7, 3],
                     [9, 0, 9, 9],
                     [9, 9, 0, 9]], dtype=float)
    out, moved = reassign_duplicates(t, dist)
    assert moved == 2
    assert out.codes[:, 1].tolist() == [3, 0, 1, 2]
    # code 2 is used under prefix 1 only; it stays free under prefix 0 and was not needed
    assert out.is_collision_free()


def test_reassign_falls_back_to_extra_level_when_prefix_is_full():
    # three items share (0, 0) and the last codebook has 2 codes: one item cannot be placed
    t = CodeTable(codes=[[0, 0], [0, 0], [0, 0]], codebook_sizes=(1, 2))
    out, rep = make_collision_free(t, "reassign")
    assert rep.reassigned == 1 and rep.extra_level and rep.extra_codebook_size == 2
    assert out.codes.tolist() == [[0, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert out.is_collision_free()


def test_bijection_round_trip_random_tables():
    rng = np.random.default_rng(0)
    for method in ("extra_level", "reassign"):
        for trial in range(20):
            n, sizes = int(rng.integers(2, 300)), tuple(int(k) for k in rng.integers(1, 6, size=3))
            t = CodeTable(codes=np.stack([rng.integers(0, k, n) for k in sizes], 1), codebook_sizes=sizes,
                          item_ids=[f"it{i}" for i in range(n)])
            out, rep = make_collision_free(t, method)
            assert rep.collisions_after == 0 and out.is_collision_free()
            inv = out.item_of_codes()  # codes -> item
            assert all(inv[tuple(int(c) for c in out.codes[i])] == i for i in range(n))
            assert sorted(inv.values()) == list(range(n))
            # tokens -> item -> tokens
            tok = {tuple(out.item_tokens(i)): i for i in range(n)}
            assert len(tok) == n
            # the learnt levels are untouched by the extra level; reassign only touches the last level
            np.testing.assert_array_equal(out.codes[:, :2], t.codes[:, :2])
            if method == "extra_level":
                np.testing.assert_array_equal(out.codes[:, :3], t.codes)


def test_unknown_method_and_bad_distances():
    t = CodeTable(codes=[[0], [0]], codebook_sizes=(2,))
    with pytest.raises(ValueError, match="unknown de-duplication method"):
        make_collision_free(t, "drop")
    with pytest.raises(ValueError, match=r"last_dist must be \[2, 2\]"):
        reassign_duplicates(t, np.zeros((2, 3)))
