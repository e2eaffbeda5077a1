"""LC-Rec X.index.json import/export and de-duplication of imported codes."""
import json

import numpy as np
import pytest

from agrec.errors import DataError
from agrec.semantic_ids import CodeTable
from agrec.semantic_ids.dedup import make_collision_free

# Six items; "i1" and "i4" share <a_0><b_1><c_2><d_3>, and "i2", "i3", "i5" share another code (as released
# LC-Rec / LETTER / AGRec index files do: their de-duplication leaves some items indistinguishable).
DUP_INDEX = {
    "i0": ["<a_0>", "<b_0>", "<c_0>", "<d_0>"],
    "i1": ["<a_0>", "<b_1>", "<c_2>", "<d_3>"],
    "i2": ["<a_1>", "<b_1>", "<c_1>", "<d_1>"],
    "i3": ["<a_1>", "<b_1>", "<c_1>", "<d_1>"],
    "i4": ["<a_0>", "<b_1>", "<c_2>", "<d_3>"],
    "i5": ["<a_1>", "<b_1>", "<c_1>", "<d_1>"],
}


@pytest.fixture
def dup_index(tmp_path):
    p = tmp_path / "Toy.index.json"
    p.write_text(json.dumps(DUP_INDEX), encoding="utf-8")
    return p


def test_import_keeps_duplicates_and_infers_sizes(dup_index):
    t = CodeTable.from_index_json(dup_index)
    assert t.item_ids == ["i0", "i1", "i2", "i3", "i4", "i5"]
    assert t.codebook_sizes == (2, 2, 3, 4)
    np.testing.assert_array_equal(t.codes[1], [0, 1, 2, 3])
    assert t.n_collisions() == 3  # i4 repeats i1; i3 and i5 repeat i2


def test_import_follows_given_item_order_and_sizes(dup_index):
    t = CodeTable.from_index_json(dup_index, item_ids=["i5", "i0"], codebook_sizes=(256, 256, 256, 256))
    np.testing.assert_array_equal(t.codes, [[1, 1, 1, 1], [0, 0, 0, 0]])
    assert t.codebook_sizes == (256,) * 4
    with pytest.raises(DataError, match=r"item 'nope' has no codes"):
        CodeTable.from_index_json(dup_index, item_ids=["i0", "nope"])
    with pytest.raises(DataError, match=r"at least \[2, 2, 3, 4\]"):
        CodeTable.from_index_json(dup_index, codebook_sizes=(2, 2, 2, 2))


def test_imported_duplicates_become_collision_free_extra_level(dup_index):
    t = CodeTable.from_index_json(dup_index)
    out, rep = make_collision_free(t, "extra_level")
    assert out.is_collision_free() and rep.collisions_before == 3 and rep.collisions_after == 0
    assert out.codebook_sizes == (2, 2, 3, 4, 3)  # the largest group has 3 items
    # extra code = rank within the group in item order; 0 for items without a duplicate
    np.testing.assert_array_equal(out.codes[:, 4], [0, 0, 0, 1, 1, 2])
    assert out.item_tokens(5) == ["<a_1>", "<b_1>", "<c_1>", "<d_1>", "<e_2>"]


def test_imported_duplicates_become_collision_free_reassign(dup_index):
    t = CodeTable.from_index_json(dup_index, codebook_sizes=(2, 2, 3, 4))
    out, rep = make_collision_free(t, "reassign")
    assert out.is_collision_free() and out.n_levels == 4 and not rep.extra_level
    # no distances: the first item of a group keeps its code, the others take the lowest free last code
    # under their prefix. Prefix (0,1,2) uses {3} -> i4 gets 0; prefix (1,1,1) uses {1} -> i3: 0, i5: 2.
    np.testing.assert_array_equal(out.codes[:, 3], [0, 3, 1, 0, 0, 2])
    np.testing.assert_array_equal(out.codes[:, :3], t.codes[:, :3])
    assert rep.reassigned == 3


def test_export_import_round_trip(tmp_path, dup_index):
    t, _ = make_collision_free(CodeTable.from_index_json(dup_index), "extra_level")
    index = t.to_index_json(tmp_path / "out.index.json")
    assert index["i3"] == ["<a_1>", "<b_1>", "<c_1>", "<d_1>", "<e_1>"]
    back = CodeTable.from_index_json(tmp_path / "out.index.json", codebook_sizes=t.codebook_sizes)
    np.testing.assert_array_equal(back.codes, t.codes)
    assert back.item_ids == t.item_ids and back.codebook_sizes == t.codebook_sizes
    # without ids, rows are named by their index
    assert list(CodeTable(codes=[[1], [0]], codebook_sizes=(2,)).to_index_json()) == ["0", "1"]


@pytest.mark.parametrize("entry, msg", [
    (["<a_0>", "<c_1>"], r"item 'x': token 2 is '<c_1>', expected level 'b'"),
    (["<a_0>"], r"item 'x' has 1 codes, item 'ok' has 2"),
    (["<a_0>", "b_1"], r"'b_1' is not a code token"),
    ([], r"item 'x': codes must be a non-empty list"),
    (["<a_0>", 3], r"code 3 is not a string"),
])
def test_malformed_index_entries_are_named(tmp_path, entry, msg):
    p = tmp_path / "Bad.index.json"
    p.write_text(json.dumps({"ok": ["<a_0>", "<b_0>"], "x": entry}), encoding="utf-8")
    with pytest.raises(DataError, match=msg):
        CodeTable.from_index_json(p)


def test_unreadable_index_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        CodeTable.from_index_json(tmp_path / "missing.json")
    (tmp_path / "a.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(DataError, match="malformed JSON at line 1"):
        CodeTable.from_index_json(tmp_path / "a.json")
    (tmp_path / "b.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(DataError, match="expected an object"):
        CodeTable.from_index_json(tmp_path / "b.json")
