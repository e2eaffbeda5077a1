"""MovieLens-100k (embedded) and RecBole atomic files (``X.inter`` / ``X.item``).

The embedded copy ships inside the ``recbole==1.2.1`` wheel (``recbole/dataset_example/ml-100k/``).
It is found through the installed distribution's file list, without importing RecBole (whose own
imports pull in its training stack, which is not installed here).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from agrec.data.build import build_dataset, check_item_texts
from agrec.data.dataset import SeqDataset
from agrec.data.ids import check_id_column
from agrec.errors import DataError

EMBEDDED_DATASET = "ml-100k"


def embedded_ml100k_dir() -> Path:
    """Folder holding ``ml-100k.inter`` and ``ml-100k.item`` inside the installed ``recbole`` wheel."""
    try:
        dist = importlib.metadata.distribution("recbole")
    except importlib.metadata.PackageNotFoundError:
        raise DataError(
            "the embedded MovieLens-100k comes from the 'recbole' wheel, which is not installed; "
            "install it without its dependencies: pip install --no-deps recbole==1.2.1"
        ) from None
    folder = Path(str(dist.locate_file("recbole/dataset_example/ml-100k")))
    if not (folder / "ml-100k.inter").is_file():
        raise DataError(f"{folder}: the installed recbole wheel has no ml-100k.inter (expected recbole==1.2.1)")
    return folder


def read_atomic(path: Path) -> pd.DataFrame:
    """Read a RecBole atomic file: tab-separated, header ``name:type`` (token, float, token_seq …).

    Columns keep their bare names (``item_id``); token columns stay strings so ids are not mangled.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with path.open(encoding="utf-8-sig") as f:  # a BOM carries no data
            header = f.readline().rstrip("\r\n").split("\t")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    names, floats = [], []
    for col in header:
        if ":" not in col:
            raise DataError(f"{path}: header column {col!r} is not of the form name:type (RecBole atomic file)")
        name, typ = col.split(":", 1)
        if typ not in ATOMIC_TYPES:
            raise DataError(
                f"{path}: header column {col!r}: unknown type {typ!r} (RecBole types: {', '.join(ATOMIC_TYPES)})"
            )
        if name in names:
            raise DataError(f"{path}: line 1: column {name!r} appears twice in the header")
        names.append(name)
        if typ == "float":
            floats.append(name)
    try:
        df = pd.read_csv(
            path,
            sep="\t",
            header=0,
            names=names,
            dtype="string",
            keep_default_na=False,
            quoting=3,
            engine="c",
            encoding="utf-8-sig",
        )
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot parse: {e}") from None
    for name in floats:
        # Parsed here rather than by read_csv so that a bad value is reported with its line.
        text = df[name].fillna("").str.strip()
        num = pd.to_numeric(text.where(text != "", None), errors="coerce")
        bad = (text != "") & num.isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{path}: line {row + 2}: column '{name}' value {text.iloc[row]!r} is not a number")
        df[name] = num.astype(np.float64)
    return df


ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")


def load_atomic(
    folder: Path | None,
    dataset: str,
    min_seq_len: int,
    require_text: bool,
    step: Callable[[str], None] = lambda phase: None,
) -> SeqDataset:
    """Load ``<dataset>.inter`` and ``<dataset>.item`` from ``folder`` (None = embedded MovieLens-100k)."""
    if folder is None:
        if dataset != EMBEDDED_DATASET:
            raise DataError(
                f"data.path is not set and only '{EMBEDDED_DATASET}' is embedded (got dataset "
                f"{dataset!r}); set data.path to the folder holding {dataset}.inter"
            )
        folder = embedded_ml100k_dir()
    inter_path = folder / f"{dataset}.inter"
    item_path = folder / f"{dataset}.item"
    inter = read_atomic(inter_path)
    step(f"read {inter_path.name}")
    for col in ("user_id", "item_id"):
        if col not in inter.columns:
            raise DataError(f"{inter_path}: missing column '{col}' (header has {list(inter.columns)})")
    # Line numbers for messages: header is line 1.
    lines = np.arange(2, len(inter) + 2)
    for col in ("user_id", "item_id"):
        empty = inter[col].isna() | (inter[col].str.strip() == "")
        if empty.any():
            raise DataError(f"{inter_path}: line {lines[int(np.flatnonzero(empty.to_numpy())[0])]}: empty '{col}'")
        check_id_column(inter[col], str(inter_path), col)
    times = inter["timestamp"].to_numpy(np.float64) if "timestamp" in inter.columns else None
    if times is not None and not np.isfinite(times).all():
        bad = int(np.flatnonzero(~np.isfinite(times))[0])
        what = "empty timestamp" if np.isnan(times[bad]) else f"timestamp {float(times[bad])!r} is not finite"
        raise DataError(f"{inter_path}: line {lines[bad]}: {what}")

    item_table = read_atomic(item_path) if item_path.is_file() else None
    if item_table is not None and "item_id" not in item_table.columns:
        raise DataError(f"{item_path}: missing column 'item_id' (header has {list(item_table.columns)})")
    item_order = list(item_table["item_id"]) if item_table is not None else None
    if item_table is not None and (item_table["item_id"].isna() | (item_table["item_id"] == "")).any():
        row = int(np.flatnonzero((item_table["item_id"].isna() | (item_table["item_id"] == "")).to_numpy())[0])
        raise DataError(f"{item_path}: line {row + 2}: empty 'item_id'")
    if item_table is not None:
        check_id_column(item_table["item_id"], str(item_path), "item_id")
    ds, kept = build_dataset(
        dataset,
        inter_path,
        inter["user_id"].to_numpy(str),
        inter["item_id"].to_numpy(str),
        times,
        min_seq_len,
        item_order=item_order,
        line_numbers=lines,
    )
    step("grouped by user")
    if item_table is None:
        if require_text:
            raise DataError(
                f"{item_path}: file not found (item text is required; set data.require_text: false "
                f"if codes come from elsewhere)"
            )
        return ds
    if item_table["item_id"].duplicated().any():
        dup = item_table["item_id"][item_table["item_id"].duplicated()].iloc[0]
        raise DataError(f"{item_path}: item id {dup!r} is listed twice")
    info = item_table.set_index("item_id")
    missing = [i for i in kept if i not in info.index]
    if missing and require_text:
        raise DataError(
            f"{item_path}: item {missing[0]!r} (used in {inter_path.name}) has no row here; "
            f"{len(missing)} interacted item(s) lack text"
        )
    info = info.reindex(kept)
    ds.item_info = _movielens_info(info)
    ds.item_text = check_item_texts(
        [_movielens_text(r) for r in ds.item_info.itertuples()],
        kept,
        item_path,
        require_text,
        ds.notes,
        "data.require_text is false",
    )
    unused = len(item_table) - len(kept) + len(missing)
    if unused:
        ds.notes.append(f"{unused} item(s) of {item_path.name} have no interactions and are not in the catalogue")
    return ds


def _movielens_info(info: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=pd.RangeIndex(len(info), name="item"))
    out["item_id"] = list(info.index)
    rename = {"movie_title": "title", "release_year": "year", "class": "genres"}
    for src, dst in rename.items():
        if src in info.columns:
            out[dst] = info[src].fillna("").to_numpy()
    for col in info.columns:
        if col not in rename:
            out[col] = info[col].to_numpy()
    if "genres" in out.columns:
        # RecBole token_seq: space-separated tokens ("Children's", "Sci-Fi" are single tokens).
        out["genres"] = [g.split() if isinstance(g, str) else [] for g in out["genres"]]
    return out


def _movielens_text(row) -> str:
    parts = []
    title = " ".join(str(getattr(row, "title", "")).split())
    year = " ".join(str(getattr(row, "year", "")).split())
    if title:
        parts.append(f"{title} ({year})" if year else str(title))
    genres = getattr(row, "genres", None)
    if genres:
        parts.append("Genres: " + ", ".join(genres))
    return ". ".join(parts)
