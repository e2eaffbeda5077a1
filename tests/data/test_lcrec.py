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
