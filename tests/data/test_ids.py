"""Every loader rejects the same bad user and item ids the same way (agrec.data.ids)."""

import json
import sys
import unicodedata

import pytest

from agrec.config import DataConfig
from agrec.data.ids import BAD_CATEGORIES, bad_characters, id_problem
from agrec.data.loaders import load_dataset
from agrec.errors import DataError


def test_the_character_class_is_exactly_the_bad_categories():
    pattern = bad_characters()
    # every code point, against unicodedata directly (not the code under test)
    mismatched = [cp for cp in range(sys.maxunicode + 1)
                  if bool(pattern.fullmatch(chr(cp))) != (unicodedata.category(chr(cp)) in BAD_CATEGORIES)]
    assert mismatched == []


@pytest.mark.parametrize("value, problem", [
    ("", "is empty"), ("   ", "is empty"),
    ("0\x00", "holds the character U+0000 (Cc)"),
    ("a\u200bb", "holds the character U+200B (ZERO WIDTH SPACE)"),
    ("x\u2028", "holds the character U+2028 (LINE SEPARATOR)"),
    ("\ufeffid", "holds the character U+FEFF (ZERO WIDTH NO-BREAK SPACE)"),
    ("tab\there", "holds the character U+0009 (Cc)"),
])
def test_bad_ids(value, problem):
    assert id_problem(value).startswith(problem)


@pytest.mark.parametrize("value", ["0", "user 7", "é", "日本", "a-b_c.d", "B000123"])
def test_good_ids(value):
    assert id_problem(value) is None


def _lcrec(tmp_path, inter):
    (tmp_path / "T.inter.json").write_text(json.dumps(inter))
    (tmp_path / "T.index.json").write_text(json.dumps({str(i): [f"<a_{i}>"] for i in range(5)}))
    return DataConfig(dataset="T", format="lcrec", path=str(tmp_path), min_seq_len=3)


@pytest.mark.parametrize("inter, message", [
    ({"": [0, 1, 2]}, "T.inter.json: user id '' is empty"),
    ({"u\x00": [0, 1, 2]}, r"T.inter.json: user id 'u\\x00' holds the character U\+0000"),
    ({"u": [0, "1\u200b", 2]}, r"T.inter.json: user 'u', position 1: item id '1\\u200b' holds the character U\+200B"),
])
def test_lcrec_rejects_bad_ids(tmp_path, inter, message):
    with pytest.raises(DataError, match=message):
        load_dataset(_lcrec(tmp_path, inter), tmp_path)


@pytest.mark.parametrize("user, message", [
    ("0\x00", r"inter.csv: line 5: 'user' '0\\x00' holds the character U\+0000"),   # would merge into user 0
    ("\u200b", r"inter.csv: line 5: 'user' '\\u200b' holds the character U\+200B"),
])
def test_tabular_rejects_bad_ids_with_the_line(tmp_path, user, message):
    rows = ["user,item,time", "0,a,1", "0,b,2", "0,c,3", f"{user},a,4", f"{user},b,5", f"{user},c,6"]
    (tmp_path / "inter.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    cfg = DataConfig(dataset="T", format="tabular", path=str(tmp_path), inter_file="inter.csv", item_file=None,
                     user_col="user", item_col="item", time_col="time", require_text=False, min_seq_len=3)
    with pytest.raises(DataError, match=message):
        load_dataset(cfg, tmp_path)


def test_movielens_rejects_bad_ids_with_the_line(tmp_path):
    (tmp_path / "m.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                      "1\t10\t5\t1\n1\t1\x011\t5\t2\n1\t12\t5\t3\n", encoding="utf-8")
    cfg = DataConfig(dataset="m", format="movielens", path=str(tmp_path), min_seq_len=3)
    with pytest.raises(DataError, match=r"m.inter: line 3: item_id '1\\x011' holds the character U\+0001"):
        load_dataset(cfg, tmp_path)
