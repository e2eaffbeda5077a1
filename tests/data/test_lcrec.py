import json

import numpy as np
import pytest

from agrec.data import DataConfig, leave_one_out, load_dataset
from agrec.errors import DataError

from conftest import write_json


def load(folder, **kw):
    return load_dataset(DataConfig(dataset="Toy", format="lcrec", **kw), folder)


def test_loads_text_codes_and_filters_short_users(lcrec_dir):
    ds = load(lcrec_dir)
    assert ds.n_users == 3 and ds.n_items == 5
    assert ds.n_filtered_users == 1 and ds.n_filtered_interactions == 2
    assert any("filtered 1 user(s) with fewer than 3" in n for n in ds.notes)
    assert ds.item_text[0].startswith("Title: Item 0. Brand: B. Categories: Cat A, Cat B. Description: ddd")
    assert ds.item_text[0].endswith("d" * 500)  # description truncated to 500 characters
    assert ds.item_codes[3] == ["<a_1>", "<b_3>", "<c_0>", "<d_0>"]
    assert ds.item_info.loc[0, "genres"] == ["Cat A", "Cat B"]
    np.testing.assert_array_equal(ds.sequences[2], [4, 3, 2, 1, 0])  # list order is time order
    split = leave_one_out(ds)
    assert split.valid[2] == 1 and split.test[2] == 0
    np.testing.assert_array_equal(split.history(2, "test"), [4, 3, 2, 1])


def test_inter_plus_index_without_item_text(lcrec_dir):
    (lcrec_dir / "Toy.item.json").unlink()
    ds = load(lcrec_dir)
    assert ds.item_text is None and ds.item_codes is not None and ds.n_items == 5


def test_inter_alone_is_an_error(lcrec_dir):
    (lcrec_dir / "Toy.item.json").unlink()
    (lcrec_dir / "Toy.index.json").unlink()
    with pytest.raises(DataError, match=r"neither Toy\.item\.json \(item text\) nor Toy\.index\.json"):
        load(lcrec_dir)


def test_missing_inter_file(lcrec_dir):
    (lcrec_dir / "Toy.inter.json").unlink()
    with pytest.raises(DataError, match=r"Toy\.inter\.json: file not found"):
        load(lcrec_dir)


def test_malformed_json_names_file_and_position(lcrec_dir):
    (lcrec_dir / "Toy.item.json").write_text('{"0": {"title": "a"},\n "1": {"title": }\n}')
    with pytest.raises(DataError, match=r"Toy\.item\.json: malformed JSON at line 2, column 17"):
        load(lcrec_dir)


def test_item_without_text_names_the_item(lcrec_dir):
    (lcrec_dir / "Toy.index.json").unlink()
    meta = json.loads((lcrec_dir / "Toy.item.json").read_text())
    del meta["2"]
    write_json(lcrec_dir / "Toy.item.json", meta)
    with pytest.raises(DataError, match=r"Toy\.item\.json: item '2' \(used in Toy\.inter\.json\) has no entry"):
        load(lcrec_dir)


def test_item_with_empty_text_names_the_item(lcrec_dir):
    (lcrec_dir / "Toy.index.json").unlink()
    meta = json.loads((lcrec_dir / "Toy.item.json").read_text())
    meta["4"] = {"title": "", "description": ""}
    write_json(lcrec_dir / "Toy.item.json", meta)
    with pytest.raises(DataError, match=r"item '4' has no text"):
        load(lcrec_dir)


def test_empty_sequence_names_the_user(lcrec_dir):
    write_json(lcrec_dir / "Toy.inter.json", {"0": [0, 1, 2], "7": []})
    with pytest.raises(DataError, match=r"Toy\.inter\.json: user '7' has an empty sequence"):
        load(lcrec_dir)


def test_bad_item_id_type(lcrec_dir):
    write_json(lcrec_dir / "Toy.inter.json", {"0": [0, 1, {"x": 1}]})
    with pytest.raises(DataError, match=r"user '0', position 2: item id must be a string or an integer"):
        load(lcrec_dir)


def test_item_without_codes(lcrec_dir):
    idx = json.loads((lcrec_dir / "Toy.index.json").read_text())
    del idx["1"]
    write_json(lcrec_dir / "Toy.index.json", idx)
    with pytest.raises(DataError, match=r"Toy\.index\.json: item '1' \(used in Toy\.inter\.json\) has no codes"):
        load(lcrec_dir)


def test_nobody_long_enough(lcrec_dir):
    with pytest.raises(DataError, match="no user has at least 9 interactions"):
        load(lcrec_dir, min_seq_len=9)


# -- strict JSON and text ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, text, where", [
    ("Toy.inter.json", '{"0": [0, 1, NaN]}', r"Toy\.inter\.json: line 1, column 14: NaN is not valid JSON"),
    ("Toy.item.json", '{"0": {"title": "a",\n "description": Infinity}}',
     r"Toy\.item\.json: line 2, column 17: Infinity is not valid JSON"),
    ("Toy.index.json", '{"0": ["<a_1>", "NaN"],\n"1": -Infinity}', r"Toy\.index\.json: line 2, column 6: -Infinity is not"),
])
def test_non_standard_json_numbers_are_refused_with_position(lcrec_dir, name, text, where):
    (lcrec_dir / name).write_text(text)
    with pytest.raises(DataError, match=where):
        load(lcrec_dir)


@pytest.mark.parametrize("name, text, key", [
    ("Toy.inter.json", '{"0": [0, 1, 2], "0": [3, 4, 0]}', "'0'"),
    ("Toy.item.json", '{"0": {"title": "a", "title": "b"}}', "'title'"),
])
def test_duplicate_json_keys_are_refused(lcrec_dir, name, text, key):
    (lcrec_dir / name).write_text(text)
    with pytest.raises(DataError, match=rf"{name.replace('.', chr(92) + '.')}: key {key} appears twice in one object"):
        load(lcrec_dir)


def test_bom_is_skipped(lcrec_dir):
    for name in ("Toy.inter.json", "Toy.item.json"):
        path = lcrec_dir / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load(lcrec_dir).n_users == 3


def test_deep_nesting_is_a_data_error(lcrec_dir):
    (lcrec_dir / "Toy.inter.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataError, match=r"Toy\.inter\.json: JSON nested too deeply"):
        load(lcrec_dir)


@pytest.mark.parametrize("meta", [
    {"title": "", "categories": []},
    {"title": "   ", "categories": ["", " "], "brand": None},
    {"description": "\n\t"},
])
def test_fields_that_are_only_blank_give_no_text_not_labels(lcrec_dir, meta):
    (lcrec_dir / "Toy.index.json").unlink()
    items = json.loads((lcrec_dir / "Toy.item.json").read_text())
    items["3"] = meta
    write_json(lcrec_dir / "Toy.item.json", items)
    with pytest.raises(DataError, match=r"Toy\.item\.json: item '3' has no text \(title, brand, categories, "
                                        r"description are all empty\)"):
        load(lcrec_dir)


def test_blank_list_entries_are_dropped_from_the_text():
    from agrec.data.lcrec import lcrec_text

    assert lcrec_text({"title": "T", "categories": ["", "A", " ", "B  C"]}) == "Title: T. Categories: A, B C"
    assert lcrec_text({"categories": []}) == ""


@pytest.mark.parametrize("value", [{"a": 1}, True, [1, {"b": 2}]])
def test_text_field_of_the_wrong_type_names_item_and_field(lcrec_dir, value):
    items = json.loads((lcrec_dir / "Toy.item.json").read_text())
    items["2"]["brand"] = value
    write_json(lcrec_dir / "Toy.item.json", items)
    with pytest.raises(DataError, match=r"Toy\.item\.json: item '2': field 'brand' must be a string, a number or a "
                                        r"list of them"):
        load(lcrec_dir)


def test_optional_text_with_gaps_is_counted_and_not_used(lcrec_dir):
    items = json.loads((lcrec_dir / "Toy.item.json").read_text())
    del items["4"]
    items["1"] = {"title": ""}
    write_json(lcrec_dir / "Toy.item.json", items)
    ds = load(lcrec_dir)  # codes come from Toy.index.json, so text is optional
    assert ds.item_text is None and ds.item_codes is not None
    assert "1 item(s) have no entry in Toy.item.json" in ds.notes
    assert "2 item(s) have no text (first: '1'); item text is not used (codes come from Toy.index.json)" in ds.notes


def test_odd_numeric_looking_ids_load_as_strings(lcrec_dir):
    write_json(lcrec_dir / "Toy.inter.json", {"--5": [0, 1, 2], "١٢٣": [1, 2, 3], "²": [2, 3, 4], "7": [0, 2, 4]})
    ds = load(lcrec_dir)
    assert ds.user_ids == ["--5", "١٢٣", "²", "7"]  # not all ASCII integers: first-appearance order
