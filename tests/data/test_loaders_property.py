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
            event(f"refused: {type(e).__name__}: {str(e).split(': ', 1)[-1][:40]}")
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


good_id = st.sampled_from(["1", "2", "3", "10", "-1", "--5", "١٢٣", "²", "007", "a", "b", "💥"])
item_id = st.one_of(good_id, st.integers(-2, 12))
text_value = st.one_of(st.text(max_size=6), st.lists(st.text(max_size=4), max_size=3), st.none())


def poison(data: st.DataObject, obj):
    """Sometimes replace one value somewhere in ``obj`` by an arbitrary JSON value."""
    if not data.draw(st.booleans()) or not isinstance(obj, (dict, list)) or not obj:
        return obj
    keys = list(obj) if isinstance(obj, dict) else list(range(len(obj)))
    k = data.draw(st.sampled_from(keys))
    if isinstance(obj[k], (dict, list)) and obj[k] and data.draw(st.booleans()):
        obj[k] = poison(data, obj[k])
    else:
        obj[k] = data.draw(json_value)
    return obj


@SETTINGS
@given(data=st.data(), users=st.dictionaries(good_id, st.lists(item_id, min_size=1, max_size=6), min_size=1, max_size=5),
       with_items=st.booleans(), with_index=st.booleans(), require_text=st.booleans())
def test_lcrec_random_files(data, users, with_items, with_index, require_text):
    ids = sorted({str(i) for seq in users.values() for i in seq})
    files = {"R.inter.json": mutate(data, dumps(poison(data, users)))}
    if with_items:
        items = {}
        for i in ids:  # mostly a plain title; sometimes random, possibly empty, fields
            fields = {"title": f"t{i}"} if data.draw(st.integers(0, 3)) else {}
            for k in ("brand", "categories", "description", "title"):
                if data.draw(st.integers(0, 3)) == 0:
                    fields[k] = data.draw(text_value)
            items[i] = fields
        files["R.item.json"] = mutate(data, dumps(poison(data, items)))
    if with_index:
        index = {i: [f"<a_{n % 3}>", f"<b_{n}>"] for n, i in enumerate(ids)}
        files["R.index.json"] = mutate(data, dumps(poison(data, index)))
    run_loader(files, DataConfig(dataset="R", format="lcrec", require_text=require_text))


# -- CSV / TSV --------------------------------------------------------------------------------------

cells = st.one_of(st.sampled_from(ODD_IDS + ["inf", "-inf", "nan", "1e400", "2024-01-01", "0123-01-01", "soon", "3",
                                             "4.5"]),
                  st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=5))
title = st.one_of(st.sampled_from(["Alpha", "B c"]), st.text(max_size=4))
ids_cell = st.sampled_from(["1", "2", "3", "-1", "--5", "١٢٣", "²", "a", "b"])


def table(data: st.DataObject, header: list[str], rows: list[list[str]], sep: str) -> bytes:
    """A delimited file; sometimes a cell becomes arbitrary text or a row loses / gains a field."""
    lines = [sep.join(header)]
    damage = data.draw(st.booleans())  # half of the files are well-formed at this level
    for row in rows:
        if not damage:
            pass
        elif data.draw(st.integers(0, 9)) == 0:
            row = row[:-1] if data.draw(st.booleans()) else row + [data.draw(cells)]
        elif data.draw(st.integers(0, 4)) == 0 and row:
            row = list(row)
            row[data.draw(st.integers(0, len(row) - 1))] = data.draw(cells)
        lines.append(sep.join(c.replace("\n", " ").replace("\r", " ") for c in row))
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")


def random_header(data: st.DataObject, canonical: list[str], extra: list[str]) -> list[str]:
    if data.draw(st.integers(0, 3)):
        return canonical
    return data.draw(st.lists(st.sampled_from(canonical + extra), min_size=1, max_size=5))


@SETTINGS
@given(data=st.data(), n_rows=st.integers(0, 14), tsv=st.booleans(), sort=st.booleans(), require_text=st.booleans())
def test_tabular_random_files(data, n_rows, tsv, sort, require_text):
    sep, suffix = ("\t", "tsv") if tsv else (",", "csv")
    header = random_header(data, ["user_id", "item_id", "timestamp"], ["title", "user_id"])
    users = data.draw(st.lists(ids_cell, min_size=1, max_size=2))  # few users, so some have 3+ rows
    rows = [[data.draw(st.sampled_from(users)) if h == "user_id" else data.draw(ids_cell) if h == "item_id" else str(t)
             for h in header] for t in range(n_rows)]
    inter = table(data, header, rows, sep)
    item_header = random_header(data, ["item_id", "title"], ["x", "title"])
    item_rows = [[i if h == "item_id" else data.draw(title) for h in item_header]
                 for i in ["1", "2", "3", "-1", "--5", "١٢٣", "²", "a", "b"]]
    files = {f"i.{suffix}": mutate(data, inter), f"t.{suffix}": mutate(data, table(data, item_header, item_rows, sep))}
    run_loader(files, DataConfig(dataset="T", format="tabular", inter_file=f"i.{suffix}", item_file=f"t.{suffix}",
                                 sort_by_time=sort, require_text=require_text))


# -- RecBole atomic files ---------------------------------------------------------------------------

atomic_extra = ["rating:float", "class:token_seq", "release_year:token", "x:int", "bad", "user_id:token"]


@SETTINGS
@given(data=st.data(), n_rows=st.integers(0, 14), with_items=st.booleans(), require_text=st.booleans())
def test_atomic_random_files(data, n_rows, with_items, require_text):
    header = random_header(data, ["user_id:token", "item_id:token", "timestamp:float"], atomic_extra)
    users = data.draw(st.lists(ids_cell, min_size=1, max_size=2))
    rows = [[data.draw(st.sampled_from(users)) if h.startswith("user_id:") else data.draw(ids_cell)
             if h.startswith("item_id:") else str(t) for h in header] for t in range(n_rows)]
    files = {"A.inter": mutate(data, table(data, header, rows, "\t"))}
    if with_items:
        item_header = random_header(data, ["item_id:token", "movie_title:token_seq", "class:token_seq"], atomic_extra)
        item_rows = [[i if h.startswith("item_id:") else data.draw(title) for h in item_header]
                     for i in ["1", "2", "3", "-1", "--5", "١٢٣", "²", "a", "b"]]
        files["A.item"] = mutate(data, table(data, item_header, item_rows, "\t"))
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
