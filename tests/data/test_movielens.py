import numpy as np
import pytest

from agrec.data import DataConfig, dataset_statistics, leave_one_out, load_dataset
from agrec.data.movielens import embedded_ml100k_dir, load_atomic
from agrec.errors import DataError


@pytest.fixture(scope="module")
def ml100k():
    return load_dataset(DataConfig())


def test_embedded_files_are_found_without_importing_recbole():
    import sys

    folder = embedded_ml100k_dir()
    assert (folder / "ml-100k.item").is_file()
    assert "recbole" not in sys.modules


def test_ml100k_sizes(ml100k):
    assert (ml100k.n_users, ml100k.n_items, ml100k.n_interactions) == (943, 1682, 100_000)
    assert ml100k.n_filtered_users == 0
    s = dataset_statistics(ml100k)
    assert s["density"] == pytest.approx(100_000 / (943 * 1682))
    assert s["avg_length"] == pytest.approx(100_000 / 943)


def test_ml100k_split_sizes(ml100k):
    split = leave_one_out(ml100k)
    assert split.sizes() == {"train": 100_000 - 2 * 943, "valid": 943, "test": 943}
    users, items = split.train_pairs()
    assert len(users) == len(items) == 98_114


def test_ml100k_ids_text_and_order(ml100k):
    # numeric ids keep numeric order: user "1" is index 0, item "1" (Toy Story) is index 0
    assert ml100k.user_ids[:3] == ["1", "2", "3"] and ml100k.item_ids[0] == "1"
    assert ml100k.item_text[0] == "Toy Story (1995). Genres: Animation, Children's, Comedy"
    assert ml100k.item_info.loc[0, "genres"] == ["Animation", "Children's", "Comedy"]
    for t in ml100k.timestamps:
        assert np.all(np.diff(t) >= 0)


def test_equal_timestamps_keep_file_order(ml100k):
    # docs/design.md §4.1: 415 of 943 users rated their last two movies in the same second.
    same = sum(1 for t in ml100k.timestamps if t[-1] == t[-2])
    assert same == 415


def test_atomic_tie_break_is_file_order(tmp_path):
    (tmp_path / "x.inter").write_text(
        "user_id:token\titem_id:token\ttimestamp:float\n"
        "u\tc\t5\n"
        "u\ta\t1\n"
        "u\tb\t5\n"   # same second as c, later in the file -> after c
        "u\td\t3\n")
    ds = load_atomic(tmp_path, "x", min_seq_len=3, require_text=False)
    order = [ds.item_ids[i] for i in ds.sequences[0]]
    assert order == ["a", "d", "c", "b"]


def test_missing_item_file_when_text_required(tmp_path):
    (tmp_path / "x.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\nu\ta\t1\nu\tb\t2\nu\tc\t3\n")
    with pytest.raises(DataError, match=r"x\.item: file not found"):
        load_atomic(tmp_path, "x", min_seq_len=3, require_text=True)


def test_dataset_not_embedded():
    with pytest.raises(DataError, match="only 'ml-100k' is embedded"):
        load_dataset(DataConfig(dataset="ml-1m"))


def test_missing_data_folder(tmp_path):
    with pytest.raises(DataError, match="data folder not found"):
        load_dataset(DataConfig(format="lcrec", dataset="x"), tmp_path / "nope")


ATOMIC_HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"
ATOMIC_ITEMS = "item_id:token\tmovie_title:token_seq\tclass:token_seq\na\tA\tx\nb\tB\ty\nc\tC\tz\n"


def _atomic(tmp_path, inter, items=ATOMIC_ITEMS, require_text=True):
    (tmp_path / "x.inter").write_bytes(inter.encode() if isinstance(inter, str) else inter)
    if items is not None:
        (tmp_path / "x.item").write_text(items)
    return load_atomic(tmp_path, "x", min_seq_len=3, require_text=require_text)


@pytest.mark.parametrize("rows, message", [
    ("u\ta\t1\nu\tb\tinf\nu\tc\t3\n", r"x\.inter: line 3: timestamp inf is not finite"),
    ("u\ta\t1\nu\tb\tabc\nu\tc\t3\n", r"x\.inter: line 3: column 'timestamp' value 'abc' is not a number"),
    ("u\ta\t1\nu\nu\tc\t3\n", r"x\.inter: line 3: empty 'item_id'"),
])
def test_atomic_bad_rows_name_the_line(tmp_path, rows, message):
    with pytest.raises(DataError, match=message):
        _atomic(tmp_path, ATOMIC_HEADER + rows)


@pytest.mark.parametrize("header, message", [
    ("user_id:token\titem_id:token\titem_id:token\n", r"x\.inter: line 1: column 'item_id' appears twice"),
    ("user_id:int\titem_id:token\n", r"x\.inter: header column 'user_id:int': unknown type 'int'"),
])
def test_atomic_bad_header(tmp_path, header, message):
    with pytest.raises(DataError, match=message):
        _atomic(tmp_path, header + "u\ta\n")


def test_atomic_bom_crlf_and_odd_ids(tmp_path):
    rows = "--5\ta\t1\n--5\tb\t2\n--5\tc\t3\n3\ta\t1\n3\tb\t2\n3\tc\t3\n"
    ds = _atomic(tmp_path, b"\xef\xbb\xbf" + (ATOMIC_HEADER + rows).replace("\n", "\r\n").encode())
    assert ds.user_ids == ["--5", "3"] and ds.item_text[0] == "A. Genres: x"


def test_atomic_empty_item_text(tmp_path):
    items = "item_id:token\tmovie_title:token_seq\trelease_year:token\na\tA\t1990\nb\t  \t1991\nc\tC\t1992\n"
    with pytest.raises(DataError, match=r"x\.item: item 'b' has an empty text; 1 item\(s\) have no text"):
        _atomic(tmp_path, ATOMIC_HEADER + "u\ta\t1\nu\tb\t2\nu\tc\t3\n", items)
    with pytest.raises(DataError, match=r"x\.item: missing column 'item_id'"):
        _atomic(tmp_path, ATOMIC_HEADER + "u\ta\t1\n", "id:token\tmovie_title:token_seq\na\tA\n")
