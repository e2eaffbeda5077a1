import numpy as np
import pytest

from agrec.errors import DataError
from agrec.semantic_ids import CodeTable, code_token, parse_code_token


def test_tokens_round_trip():
    assert code_token(0, 35) == "<a_35>" and code_token(4, 0) == "<e_0>"
    assert parse_code_token("<d_77>") == (3, 77)
    with pytest.raises(DataError, match="not a code token"):
        parse_code_token("<z_1>")


def test_table_tokens_collisions_and_inverse(tmp_path):
    t = CodeTable(codes=[[0, 1], [1, 1], [0, 1]], codebook_sizes=(2, 3), item_ids=["x", "y", "z"])
    assert t.item_tokens(1) == ["<a_1>", "<b_1>"]
    assert t.all_tokens() == ["<a_0>", "<a_1>", "<b_0>", "<b_1>", "<b_2>"]
    assert t.n_collisions() == 1 and not t.is_collision_free()
    with pytest.raises(ValueError, match="1 collision"):
        t.item_of_codes()
    u = CodeTable(codes=[[0, 1], [1, 1], [0, 2]], codebook_sizes=(2, 3))
    assert u.item_of_codes() == {(0, 1): 0, (1, 1): 1, (0, 2): 2}
    u.save(tmp_path / "codes.json")
    v = CodeTable.load(tmp_path / "codes.json")
    np.testing.assert_array_equal(v.codes, u.codes)
    assert v.codebook_sizes == (2, 3)


def test_out_of_range_code_is_refused():
    with pytest.raises(ValueError, match="outside its level's codebook"):
        CodeTable(codes=[[0, 3]], codebook_sizes=(2, 3))
