"""Property tests: random, often malformed data files thrown at every loader.

Each example must give either a well-formed :class:`SeqDataset` or an :class:`AgrecError` subclass (a
message for the user) — never another exception — and the loaders write nothing anywhere.
"""
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agrec.data import DataConfig, load_dataset
from agrec.data.dataset import SeqDataset
from agrec.errors import AgrecError

SETTINGS = settings(max_examples=int(os.environ.get("AGREC_PROPERTY_EXAMPLES", 120)), deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)

# Ids that have tripped loaders: non-ASCII digits, several dashes, blanks, huge numbers, look-alikes.
ODD_IDS = ["1", "2", "3", "-1", "--5", "١٢٣", "²", "007", "7", " 1", "", "a", "b", "NaN", "1e3", "💥", "a\tb", '"q"']
id_text = st.one_of(st.sampled_from(ODD_IDS), st.text(max_size=4))
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**20), st.floats(allow_nan=True),
                        st.sampled_from(ODD_IDS), st.text(max_size=6))
json_value = st.recursive(json_scalar, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=4), c,
                                                                                                max_size=3), max_leaves=8)


def check_dataset(ds: SeqDataset, min_seq_len: int) -> None:
    """The invariants every loaded dataset keeps."""
    assert ds.n_users > 0 and ds.n_items > 0
    assert len(set(ds.user_ids)) == ds.n_users and len(set(ds.item_ids)) == ds.n_items
    assert all(isinstance(u, str) for u in ds.user_ids) and all(isinstance(i, str) for i in ds.item_ids)
    for s in ds.sequences:
        assert len(s) >= min_seq_len and s.dtype == np.int64 and s.min() >= 0 and s.max() < ds.n_items
    if ds.timestamps is not None:
        for s, t in zip(ds.sequences, ds.timestamps):
            assert len(t) == len(s) and np.isfinite(t).all()
    if ds.item_text is not None:
        assert len(ds.item_text) == ds.n_items and all(isinstance(t, str) and t.strip() for t in ds.item_text)
    if ds.item_codes is not None:
        assert all(c and all(isinstance(x, str) for x in c) for c in ds.item_codes)


def run_loader(files: dict[str, bytes], cfg: DataConfig) -> None:
    cwd_before = sorted(os.listdir("."))
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "data"
        folder.mkdir()
        for name, blob in files.items():
            (folder / name).write_bytes(blob)
        before = sorted(p.name for p in Path(d).rglob("*"))
        try:
            ds = load_dataset(cfg, folder)
        except AgrecError as e:
            event(f"refused: {type(e).__name__}")
        else:
            event("loaded")
            check_dataset(ds, cfg.min_seq_len)
        assert sorted(p.name for p in Path(d).rglob("*")) == before  # a loader only reads
    assert sorted(os.listdir(".")) == cwd_before


def mutate(data: st.DataObject, blob: bytes) -> bytes:
    """Sometimes damage a valid file: cut it, flip a byte, add a BOM."""
    how = data.draw(st.sampled_from(["keep", "keep", "cut", "flip", "bom"]))
    if how == "cut" and blob:
        return blob[:data.draw(st.integers(0, len(blob) - 1))]
    if how == "flip" and blob:
        i = data.draw(st.integers(0, len(blob) - 1))
        return blob[:i] + bytes([data.draw(st.integers(0, 255))]) + blob[i + 1:]
    if how == "bom":
        return b"\xef\xbb\xbf" + blob
    return blob


# -- LC-Rec JSON ------------------------------------------------------------------------------------

def dumps(obj) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


inter_json = st.dictionaries(id_text, st.one_of(st.lists(st.one_of(st.sampled_from(ODD_IDS), st.integers(-2, 9)),
                                                         min_size=0, max_size=6), json_value), min_size=0, max_size=5)
item_fields = st.dictionaries(st.sampled_from(["title", "brand", "categories", "description", "x"]),
                              st.one_of(json_scalar, st.lists(json_scalar, max_size=3), json_value), max_size=4)


@SETTINGS
@given(data=st.data(), inter=inter_json, with_items=st.booleans(), with_index=st.booleans(),
       require_text=st.booleans())
def test_lcrec_random_files(data, inter, with_items, with_index, require_text):
    ids = sorted({str(i) for seq in inter.values() if isinstance(seq, list) for i in seq if not isinstance(i, dict)})
    files = {"R.inter.json": mutate(data, dumps(inter))}
    if with_items:
        items = {i: data.draw(st.one_of(item_fields, json_value)) for i in ids[:6]}
        files["R.item.json"] = mutate(data, dumps(items))
    if with_index:
        index = {i: data.draw(st.one_of(st.lists(st.sampled_from(["<a_1>", "<b_2>", ""]), max_size=3), json_value))
                 for i in ids[:6]}
        files["R.index.json"] = mutate(data, dumps(index))
    run_loader(files, DataConfig(dataset="R", format="lcrec", require_text=require_text))


# -- CSV / TSV --------------------------------------------------------------------------------------

cells = st.one_of(st.sampled_from(ODD_IDS + ["inf", "-inf", "nan", "1e400", "2024-01-01", "soon", "3", "4.5"]),
                  st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=5))


def csv_text(data: st.DataObject, header: list[str], n_rows: int, sep: str) -> bytes:
    rows = [sep.join(header)]
    for _ in range(n_rows):
        k = data.draw(st.integers(len(header) - 1, len(header) + 1))  # ragged rows happen
        rows.append(sep.join(data.draw(cells).replace("\n", " ") for _ in range(max(k, 0))))
    return ("\n".join(rows) + "\n").encode("utf-8", "surrogatepass")


@SETTINGS
@given(data=st.data(), n_rows=st.integers(0, 12), tsv=st.booleans(), sort=st.booleans(), require_text=st.booleans())
def test_tabular_random_files(data, n_rows, tsv, sort, require_text):
    sep, suffix = ("\t", "tsv") if tsv else (",", "csv")
    cols = ["user_id", "item_id", "timestamp", "title", "x"]
    header = data.draw(st.lists(st.sampled_from(cols), min_size=1, max_size=5))
    inter = csv_text(data, header, n_rows, sep)
    items = csv_text(data, data.draw(st.lists(st.sampled_from(cols), min_size=1, max_size=4)), 6, sep)
    files = {f"i.{suffix}": mutate(data, inter), f"t.{suffix}": mutate(data, items)}
    run_loader(files, DataConfig(dataset="T", format="tabular", inter_file=f"i.{suffix}", item_file=f"t.{suffix}",
                                 sort_by_time=sort, require_text=require_text))


# -- RecBole atomic files ---------------------------------------------------------------------------

atomic_col = st.sampled_from(["user_id:token", "item_id:token", "timestamp:float", "rating:float",
                              "movie_title:token_seq", "class:token_seq", "release_year:token", "x:int", "bad"])


@SETTINGS
@given(data=st.data(), n_rows=st.integers(0, 12), with_items=st.booleans(), require_text=st.booleans())
def test_atomic_random_files(data, n_rows, with_items, require_text):
    header = data.draw(st.lists(atomic_col, min_size=1, max_size=5))
    files = {"A.inter": mutate(data, csv_text(data, header, n_rows, "\t"))}
    if with_items:
        item_header = data.draw(st.lists(atomic_col, min_size=1, max_size=4))
        files["A.item"] = mutate(data, csv_text(data, item_header, 6, "\t"))
    run_loader(files, DataConfig(dataset="A", format="movielens", require_text=require_text))


def test_a_well_formed_random_file_loads():
    """The generators above can produce loadable data (so the properties are not only about errors)."""
    inter = {"1": [0, 1, 2], "--5": ["a", 1, 2], "١٢٣": [2, 1, 0]}
    items = {str(i): {"title": f"t{i}"} for i in range(3)} | {"a": {"title": "A"}}
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "R.inter.json").write_bytes(dumps(inter))
        (Path(d) / "R.item.json").write_bytes(dumps(items))
        ds = load_dataset(DataConfig(dataset="R", format="lcrec"), Path(d))
    check_dataset(ds, 3)
    assert ds.user_ids == ["1", "--5", "١٢٣"] and ds.n_items == 4
