"""Plain CSV/TSV layout for users' own data: an interaction table and an item-text table.

``interactions.csv``: one row per interaction with a user column, an item column and a timestamp
column (numbers, or dates pandas can parse). ``items.csv``: one row per item with the item column and
text columns. The separator follows the suffix (``.tsv`` = tab, else comma).

Rows must be in chronological order per user unless ``data.sort_by_time`` is true: in a file whose
order disagrees with its timestamps, the file order is not a trustworthy tie-break for equal
timestamps, so we refuse rather than guess.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from agrec.data.build import build_dataset, check_item_texts, reject_duplicates
from agrec.data.dataset import SeqDataset
from agrec.data.ids import check_id_column
from agrec.errors import DataError


def _read_table(path: Path) -> pd.DataFrame:
    """Every column as strings; a header naming a column twice is an error (pandas would rename the
    second one ``name.1`` and the loader would silently use the first)."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    kind = "TSV" if sep == "\t" else "CSV"
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f, delimiter=sep), [])
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, csv.Error) as e:
        raise DataError(f"{path}: cannot parse as {kind}: {e}") from None
    seen = set()
    for col in header:
        if col in seen:
            raise DataError(f"{path}: line 1: column {col!r} appears twice in the header")
        seen.add(col)
    return df


def _parse_times(path: Path, col: str, values: pd.Series) -> np.ndarray:
    """A numeric column as it is; otherwise dates parsed by pandas, as seconds since the epoch."""
    num = pd.to_numeric(values, errors="coerce")
    if num.notna().any():  # numeric column: every value must be a number
        secs, bad = num, num.isna()
    else:
        dt = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
        dt[~values.str.isascii()] = pd.NaT  # dateutil reads '١٢٣' as the year 123; dates are written in ASCII
        epoch = pd.Timestamp(0, tz="UTC").as_unit(dt.dt.unit)  # dates before 1677 are not in ns
        secs, bad = (dt - epoch).dt.total_seconds(), dt.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path}: line {row + 2}: column '{col}' value {values.iloc[row]!r} is neither a number nor a date"
        )
    out = secs.to_numpy(np.float64)
    inf = ~np.isfinite(out)
    if inf.any():  # "inf", "1e400": a number, but not a point in time
        row = int(np.flatnonzero(inf)[0])
        raise DataError(f"{path}: line {row + 2}: column '{col}' value {values.iloc[row]!r} is not a finite timestamp")
    return out


def load_tabular(
    folder: Path,
    inter_file: str,
    item_file: str | None,
    user_col: str,
    item_col: str,
    time_col: str,
    text_cols: list[str] | None,
    min_seq_len: int,
    require_text: bool,
    sort_by_time: bool,
    name: str,
    step: Callable[[str], None] = lambda phase: None,
) -> SeqDataset:
    inter_path = folder / inter_file
    inter = _read_table(inter_path)
    step(f"read {inter_path.name}")
    for col in (user_col, item_col, time_col):
        if col not in inter.columns:
            raise DataError(
                f"{inter_path}: missing column '{col}' (columns: {list(inter.columns)}); "
                f"set data.user_col / data.item_col / data.time_col"
            )
    for col in (user_col, item_col):
        empty = inter[col].str.strip() == ""
        if empty.any():
            row = int(np.flatnonzero(empty.to_numpy())[0])
            raise DataError(f"{inter_path}: line {row + 2}: empty '{col}'")
        check_id_column(inter[col], str(inter_path), f"'{col}'")
    times = _parse_times(inter_path, time_col, inter[time_col])
    users = inter[user_col].to_numpy(str)
    items = inter[item_col].to_numpy(str)
    lines = np.arange(2, len(inter) + 2)
    # Duplicates first: they are the more specific diagnosis when both problems are present.
    reject_duplicates(inter_path, pd.DataFrame({"user": users, "item": items, "time": times, "line": lines}))

    if not sort_by_time:
        # Per user, the file order must already be chronological.
        frame = pd.DataFrame({"u": users, "t": times, "line": lines})
        prev_t = frame.groupby("u", sort=False)["t"].shift()
        back = (frame["t"] < prev_t).to_numpy()
        if back.any():
            i = int(np.flatnonzero(back)[0])
            raise DataError(
                f"{inter_path}: line {lines[i]}: user {str(users[i])!r} has timestamp {times[i]:g}, earlier "
                f"than the row before it for this user ({prev_t.iloc[i]:g}); the file is not in "
                f"chronological order. Sort it, or set data.sort_by_time: true to sort on load "
                f"(ties then keep the file order)"
            )

    item_order = None
    table = None
    if item_file is not None:
        item_path = folder / item_file
        table = _read_table(item_path)
        if item_col not in table.columns:
            raise DataError(f"{item_path}: missing column '{item_col}' (columns: {list(table.columns)})")
        check_id_column(table[item_col], str(item_path), f"'{item_col}'")
        if table[item_col].duplicated().any():
            dup = table[item_col][table[item_col].duplicated()].iloc[0]
            raise DataError(f"{item_path}: item {dup!r} is listed twice")
        item_order = list(table[item_col])
    elif require_text:
        raise DataError(
            f"{inter_path}: data.item_file is not set but item text is required "
            f"(set data.require_text: false to load interactions only)"
        )

    ds, kept = build_dataset(
        name,
        inter_path,
        users,
        items,
        times,
        min_seq_len,
        item_order=item_order,
        line_numbers=lines,
        check_duplicates=False,
    )
    step("grouped by user")
    if table is None or item_file is None:
        return ds
    item_path = folder / item_file
    cols = text_cols if text_cols is not None else [c for c in table.columns if c != item_col]
    for c in cols:
        if c not in table.columns:
            raise DataError(
                f"{item_path}: text column '{c}' (data.text_cols) not found; columns: {list(table.columns)}"
            )
    info = table.set_index(item_col)
    texts = []
    for it in kept:
        if it not in info.index:
            if require_text:
                raise DataError(f"{item_path}: item {it!r} (used in {inter_path.name}) has no row")
            texts.append("")
            continue
        row = info.loc[it]
        text = ". ".join(f"{c}: {row[c]}" for c in cols if str(row[c]).strip())
        if not text and require_text:
            raise DataError(f"{item_path}: item {it!r} has empty text in columns {cols}")
        texts.append(text)
    ds.item_text = check_item_texts(texts, kept, item_path, require_text, ds.notes, "data.require_text is false")
    ds.item_info = info.reindex(kept).reset_index().rename(columns={item_col: "item_id"}).rename_axis("item")
    unused = len(table) - int(info.index.isin(kept).sum())
    if unused:
        ds.notes.append(f"{unused} item(s) of {item_path.name} have no interactions and are not in the catalogue")
    return ds
