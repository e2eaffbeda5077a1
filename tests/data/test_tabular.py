import numpy as np
import pytest

from agrec.data import DataConfig, load_dataset
from agrec.errors import DataError

ITEMS = "item_id,title,genre\na,Alpha,x\nb,Beta,y\nc,Gamma,x\nd,Delta,z\n"


def make(tmp_path, inter: str, items: str = ITEMS, inter_name="interactions.csv"):
    (tmp_path / inter_name).write_text(inter)
    (tmp_path / "items.csv").write_text(items)
    return tmp_path


def load(folder, **kw):
    return load_dataset(DataConfig(dataset="mine", format="tabular", **kw), folder)


def test_loads_chronological_csv(tmp_path):
    ds = load(make(tmp_path, "user_id,item_id,timestamp\n1,a,10\n2,b,5\n1,b,11\n1,c,11\n2,c,6\n2,d,7\n9,a,1\n"))
    assert ds.n_users == 2 and ds.n_items == 4
    assert ds.n_filtered_users == 1 and "filtered 1 user(s)" in ds.notes[0]
    assert [ds.item_ids[i] for i in ds.sequences[0]] == ["a", "b", "c"]  # equal times keep file order
    assert ds.item_text[0] == "title: Alpha. genre: x"


def test_tsv_and_dates(tmp_path):
    inter = "user_id\titem_id\ttimestamp\nu\ta\t2024-01-01\nu\tb\t2024-01-02\nu\tc\t2024-01-03 10:00\n"
    ds = load(make(tmp_path, inter, inter_name="i.tsv"), inter_file="i.tsv")
    assert np.all(np.diff(ds.timestamps[0]) > 0)


def test_non_chronological_csv_is_refused_with_line(tmp_path):
    folder = make(tmp_path, "user_id,item_id,timestamp\n1,a,10\n1,b,12\n2,a,1\n1,c,11\n")
    with pytest.raises(DataError, match=r"interactions\.csv: line 5: user '1' has timestamp 11, earlier than the "
                                        r"row before it for this user \(12\)"):
        load(folder)
    ds = load(folder, sort_by_time=True, min_seq_len=3)
    assert [ds.item_ids[i] for i in ds.sequences[0]] == ["a", "c", "b"]


def test_duplicate_rows_are_refused_with_lines(tmp_path):
    folder = make(tmp_path, "user_id,item_id,timestamp\n1,a,10\n1,b,11\n1,a,10\n1,c,12\n")
    with pytest.raises(DataError, match=r"duplicate interaction \(user '1', item 'a', timestamp 10\) on lines 2, 4"):
        load(folder)


def test_bad_timestamp(tmp_path):
    folder = make(tmp_path, "user_id,item_id,timestamp\n1,a,10\n1,b,soon\n1,c,12\n")
    with pytest.raises(DataError, match=r"line 3: column 'timestamp' value 'soon' is neither a number nor a date"):
        load(folder)


def test_missing_column(tmp_path):
    folder = make(tmp_path, "user,item_id,timestamp\n1,a,10\n")
    with pytest.raises(DataError, match=r"interactions\.csv: missing column 'user_id'"):
        load(folder)


def test_item_without_text_row(tmp_path):
    folder = make(tmp_path, "user_id,item_id,timestamp\n1,a,1\n1,b,2\n1,zz,3\n")
    with pytest.raises(DataError, match=r"items\.csv: item 'zz' \(used in interactions\.csv\) has no row"):
        load(folder)


def test_missing_interactions_file(tmp_path):
    (tmp_path / "items.csv").write_text(ITEMS)
    with pytest.raises(DataError, match=r"interactions\.csv: file not found"):
        load(tmp_path)


@pytest.mark.parametrize("value, line", [("inf", 4), ("1e400", 4), ("-Infinity", 4)])
def test_non_finite_timestamp_names_line(tmp_path, value, line):
    folder = make(tmp_path, f"user_id,item_id,timestamp\n1,a,1\n1,b,2\n1,c,{value}\n")
    with pytest.raises(DataError, match=rf"interactions\.csv: line {line}: column 'timestamp' value '{value}' is not "
                                        rf"a finite timestamp"):
        load(folder)


@pytest.mark.parametrize("inter, items, name, col", [
    ("user_id,item_id,timestamp,timestamp\n1,a,3,1\n", ITEMS, "interactions", "timestamp"),
    ("user_id,item_id,timestamp\n1,a,1\n", "item_id,title,title\na,A,x\n", "items", "title"),
])
def test_duplicate_header_column(tmp_path, inter, items, name, col):
    with pytest.raises(DataError, match=rf"{name}\.csv: line 1: column '{col}' appears twice in the header"):
        load(make(tmp_path, inter, items))


def test_bom_and_odd_ids(tmp_path):
    inter = "\ufeffuser_id,item_id,timestamp\n--5,a,1\n--5,b,2\n--5,c,3\n١٢٣,a,1\n١٢٣,b,2\n١٢٣,c,3\n"
    ds = load(make(tmp_path, inter))
    assert ds.user_ids == ["--5", "١٢٣"]


def test_optional_empty_text_is_counted_not_used(tmp_path):
    ds = load(make(tmp_path, "user_id,item_id,timestamp\n1,a,1\n1,b,2\n1,c,3\n", "item_id,title\na,A\nb, \nc,C\n"),
              require_text=False)
    assert ds.item_text is None
    assert "1 item(s) have no text (first: 'b'); item text is not used (data.require_text is false)" in ds.notes


def test_dates_before_1677_and_odd_digit_timestamps(tmp_path):
    # pandas parses '١٢٣' as the year 123; such dates are outside nanosecond range, which used to crash.
    ds = load(make(tmp_path, "user_id,item_id,timestamp\n1,a,0123-01-01\n1,b,1500-01-01\n1,c,2024-01-01\n"))
    assert ds.timestamps[0][0] == -58285699200.0 and np.all(np.diff(ds.timestamps[0]) > 0)


def test_non_ascii_digits_are_not_a_date(tmp_path):
    folder = make(tmp_path, "user_id,item_id,timestamp\n1,a,١٢٣\n1,b,١٢٤\n1,c,١٢٥\n")
    with pytest.raises(DataError, match=r"line 2: column 'timestamp' value '١٢٣' is neither a number nor a date"):
        load(folder)


def test_loading_reports_its_phases_to_the_progress_file(tmp_path, monkeypatch):
    import json

    from agrec.config import DataConfig
    from agrec.data.loaders import load_dataset
    from agrec.progress import ENV_VAR

    rows = ["user,item,time"] + [f"{u},{i},{t}" for u in range(4) for t, i in enumerate("abc")]
    (tmp_path / "inter.csv").write_text("\n".join(rows) + "\n")
    events = tmp_path / "progress.jsonl"
    monkeypatch.setenv(ENV_VAR, str(events))
    cfg = DataConfig(dataset="T", format="tabular", path=str(tmp_path), inter_file="inter.csv", item_file=None,
                     user_col="user", item_col="item", time_col="time", require_text=False, min_seq_len=3)
    load_dataset(cfg, tmp_path)
    ev = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(e["task"], e["event"], e["n"], e["total"], e["info"]) for e in ev] == [
        ("loading T", "update", 1, 2, {"phase": "read inter.csv"}),
        ("loading T", "update", 2, 2, {"phase": "grouped by user"}),
        ("loading T", "end", 2, 2, {"users": 4, "items": 3})]
