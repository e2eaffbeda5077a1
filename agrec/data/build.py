"""Turn a flat list of interaction events into a :class:`SeqDataset` (shared by every loader)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from agrec.data.dataset import SeqDataset
from agrec.errors import DataError


def natural_order(ids: Sequence[str]) -> list[str]:
    """Ids in numeric order when every id is an integer literal, else in the given order.

    MovieLens ids 1..943 then become indices 0..942, which keeps tables readable; string ids keep
    their first-appearance order. Either way the result is deterministic. Only ASCII integer literals
    (``-?[0-9]+``) count as numbers: ``"١٢٣"``, ``"²"`` or ``"--5"`` are ids like any other string.
    """
    ids = list(ids)
    if ids and all(isinstance(s, str) and _INT_ID.fullmatch(s) for s in ids):
        return sorted(ids, key=int)
    return ids


_INT_ID = re.compile(r"-?[0-9]+", re.ASCII)


def check_item_texts(
    texts: list[str], item_ids: Sequence[str], source: Path, require_text: bool, notes: list[str], optional_because: str
) -> list[str] | None:
    """Every item needs a non-empty text, or none is used.

    ``texts[i]`` is item ``i``'s text ("" when it has none). When text is required, the first empty one is a
    :class:`DataError` naming the item. Otherwise the empty ones are counted in ``notes`` and the dataset
    gets no text at all (None): an empty string would be embedded like a real text and give all such
    items one shared code.
    """
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if not empty:
        return texts
    if require_text:
        raise DataError(
            f"{source}: item {item_ids[empty[0]]!r} has an empty text; {len(empty)} item(s) have no "
            f"text (set data.require_text: false if codes come from elsewhere)"
        )
    notes.append(
        f"{len(empty)} item(s) have no text (first: {item_ids[empty[0]]!r}); item text is not used ({optional_because})"
    )
    return None


def reject_duplicates(source: Path, frame: pd.DataFrame) -> None:
    """Raise on repeated (user, item, time) rows; ``frame`` has columns user, item, time, line."""
    dup = frame.duplicated(subset=["user", "item", "time"], keep=False)
    if dup.any():
        rows = frame[dup].sort_values(["user", "item", "time", "line"]).head(2)
        r = rows.iloc[0]
        raise DataError(
            f"{source}: duplicate interaction (user {str(r['user'])!r}, item {str(r['item'])!r}, "
            f"timestamp {r['time']:g}) "
            f"on lines {', '.join(str(x) for x in rows['line'])}; {int(dup.sum())} rows are duplicates. "
            f"Remove the repeated rows (a repeat consumption needs its own timestamp)"
        )


def build_dataset(
    name: str,
    source: Path,
    users: np.ndarray,
    items: np.ndarray,
    times: np.ndarray | None,
    min_seq_len: int,
    item_order: Sequence[str] | None = None,
    line_numbers: np.ndarray | None = None,
    check_duplicates: bool = True,
) -> tuple[SeqDataset, list[str]]:
    """Group events by user, order them in time and filter short users.

    Args:
        users: raw user ids as strings, shape ``[n_events]``, in file order.
        items: raw item ids as strings, shape ``[n_events]``, aligned with ``users``.
        times: timestamps as float64, shape ``[n_events]``, or None when file order is the time order.
        item_order: preferred order of item ids (e.g. the item file's); items with interactions that
            are not listed come after, in first-appearance order.
        line_numbers: the source line of each event, for error messages (defaults to 1-based rows).
        check_duplicates: reject repeated (user, item, timestamp) events; only meaningful with times.

    Returns:
        The dataset (without text / codes; loaders attach those) and the list of kept item ids.
    """
    n = len(users)
    if line_numbers is None:
        line_numbers = np.arange(1, n + 1)
    if n == 0:
        raise DataError(f"{source}: no interactions")

    frame = pd.DataFrame({"user": users, "item": items, "line": line_numbers})
    if times is not None:
        times = np.asarray(times, dtype=np.float64)
        bad = ~np.isfinite(times)
        if bad.any():  # inf / nan would sort arbitrarily and poison time-aware statistics
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{source}: line {line_numbers[i]}: timestamp {float(times[i])!r} is not a finite number; "
                f"{int(bad.sum())} row(s) have one"
            )
        frame["time"] = times
        if check_duplicates:
            reject_duplicates(source, frame)

    user_ids = natural_order(pd.unique(frame["user"]))
    user_pos = {u: i for i, u in enumerate(user_ids)}
    u_idx = frame["user"].map(user_pos).to_numpy()
    # Stable order: user, then time, then file line, so equal timestamps keep the file's order.
    keys = [frame["line"].to_numpy()]
    if times is not None:
        keys.append(frame["time"].to_numpy())
    keys.append(u_idx)
    order = np.lexsort(keys)
    frame = frame.iloc[order]
    u_sorted = u_idx[order]

    counts = np.bincount(u_sorted, minlength=len(user_ids))
    keep_user = counts >= min_seq_len
    n_filtered_users = int((~keep_user).sum())
    n_filtered_inter = int(counts[~keep_user].sum())
    notes: list[str] = []
    if n_filtered_users:
        notes.append(
            f"filtered {n_filtered_users} user(s) with fewer than {min_seq_len} interactions "
            f"({n_filtered_inter} interactions)"
        )
    kept = keep_user[u_sorted]
    frame = frame[kept]
    u_sorted = u_sorted[kept]
    if len(frame) == 0:
        raise DataError(f"{source}: no user has at least {min_seq_len} interactions (data.min_seq_len)")

    present = pd.unique(frame["item"])
    present_set = set(present)
    if item_order is not None:
        ordered = [i for i in item_order if i in present_set]
        listed = set(ordered)
        ordered += [i for i in present if i not in listed]
    else:
        ordered = natural_order(present)
    item_pos = {it: i for i, it in enumerate(ordered)}
    i_idx = frame["item"].map(item_pos).to_numpy().astype(np.int64)

    new_user_ids = [u for u, k in zip(user_ids, keep_user, strict=False) if k]
    remap = np.cumsum(keep_user) - 1
    u_new = remap[u_sorted]
    bounds = np.flatnonzero(np.diff(u_new)) + 1
    sequences = np.split(i_idx, bounds)
    timestamps = np.split(frame["time"].to_numpy(dtype=np.float64), bounds) if times is not None else None
    ds = SeqDataset(
        name=name,
        user_ids=new_user_ids,
        item_ids=list(ordered),
        sequences=sequences,
        timestamps=timestamps,
        n_filtered_users=n_filtered_users,
        n_filtered_interactions=n_filtered_inter,
        notes=notes,
    )
    return ds, list(ordered)
