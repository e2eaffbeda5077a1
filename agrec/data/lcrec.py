"""LC-Rec / LETTER JSON layout, as used for the paper's Amazon and Yelp datasets.

Files in one folder, ``X`` being the dataset name:

- ``X.inter.json``: ``{user: [item, ...]}``, each list chronological (required);
- ``X.item.json``: ``{item: {"title", "description", "brand", "categories", ...}}`` (item text);
- ``X.index.json``: ``{item: ["<a_1>", "<b_2>", ...]}`` precomputed semantic IDs (optional).

A folder with only ``inter`` + ``index`` loads too: the semantic-ID stage then uses the given codes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from agrec.data.build import build_dataset, check_item_texts
from agrec.data.dataset import SeqDataset
from agrec.data.ids import id_problem
from agrec.errors import DataError, shorten

TEXT_FIELDS = ("title", "brand", "categories", "description")


def read_json(path: Path) -> Any:
    """Parse a JSON file strictly; a :class:`DataError` names the file and what is wrong.

    Rejected beyond syntax errors: ``NaN`` / ``Infinity`` (accepted by Python's json, not JSON) and a key
    repeated in one object (json keeps the last silently, e.g. a user listed twice). A UTF-8 BOM is skipped.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except _NonStandardJSON as e:
        line, col = _position(text, e.token)
        raise DataError(
            f"{path}: line {line}, column {col}: {e.token} is not valid JSON (a number must be finite)"
        ) from None
    except _DuplicateKey as e:
        raise DataError(
            f"{path}: key {e.key!r} appears twice in one object (JSON keeps only the last; merge or rename them)"
        ) from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply") from None


class _NonStandardJSON(Exception):
    def __init__(self, token: str):
        self.token = token


class _DuplicateKey(Exception):
    def __init__(self, key: str):
        self.key = key


def _reject_constant(token: str) -> Any:
    raise _NonStandardJSON(token)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)')


def _position(text: str, token: str) -> tuple[int, int]:
    """1-based line and column of the first ``token`` outside a JSON string."""
    for m in _TOKENS.finditer(text):
        if m.group(1) == token:
            line = text.count("\n", 0, m.start(1)) + 1
            return line, m.start(1) - (text.rfind("\n", 0, m.start(1)) + 1) + 1
    return 0, 0


def inter_sequences(inter: Any, path: Path) -> dict[str, list[str]]:
    """``{user: [item, ...]}`` with ids as strings; a :class:`DataError` for what the loader and
    ``agrec data check`` refuse (not an object, a non-list or empty sequence, an id that is not a string/int)."""
    if not isinstance(inter, dict):
        raise DataError(f"{path}: expected an object {{user: [items]}}, got {type(inter).__name__}")
    out = {}
    for user, seq in inter.items():
        if (problem := id_problem(user)) is not None:
            raise DataError(f"{path}: user id {shorten(user)} {problem}")
        if not isinstance(seq, list):
            raise DataError(f"{path}: user {user!r}: expected a list of items, got {type(seq).__name__}")
        if not seq:
            raise DataError(f"{path}: user {user!r} has an empty sequence")
        for pos, it in enumerate(seq):
            if isinstance(it, bool) or not isinstance(it, (str, int)):
                raise DataError(
                    f"{path}: user {user!r}, position {pos}: item id must be a string or an integer, got {shorten(it)}"
                )
            if isinstance(it, str) and (problem := id_problem(it)) is not None:
                raise DataError(f"{path}: user {user!r}, position {pos}: item id {shorten(it)} {problem}")
        out[str(user)] = [str(it) for it in seq]
    return out


def load_lcrec(
    folder: Path, dataset: str, min_seq_len: int, require_text: bool, step: Callable[[str], None] = lambda phase: None
) -> SeqDataset:
    inter_path = folder / f"{dataset}.inter.json"
    item_path = folder / f"{dataset}.item.json"
    index_path = folder / f"{dataset}.index.json"
    seqs = inter_sequences(read_json(inter_path), inter_path)
    step(f"read {inter_path.name}")
    users: list[str] = []
    items: list[str] = []
    for user, seq in seqs.items():
        users.extend([user] * len(seq))
        items.extend(seq)

    has_items = item_path.is_file()
    has_index = index_path.is_file()
    if not has_items and not has_index:
        raise DataError(
            f"{folder}: found {inter_path.name} but neither {item_path.name} (item text) nor "
            f"{index_path.name} (semantic IDs); one of them is required"
        )
    item_meta = read_json(item_path) if has_items else None
    if item_meta is not None and not isinstance(item_meta, dict):
        raise DataError(f"{item_path}: expected an object {{item: {{fields}}}}, got {type(item_meta).__name__}")
    index = read_json(index_path) if has_index else None
    if index is not None and not isinstance(index, dict):
        raise DataError(f"{index_path}: expected an object {{item: [codes]}}, got {type(index).__name__}")

    item_order = list(map(str, item_meta)) if item_meta is not None else (list(map(str, index)) if index else None)
    # The lists' order is the time order; no timestamps exist, so repeats (Yelp) are legitimate.
    ds, kept = build_dataset(
        dataset,
        inter_path,
        np.asarray(users, dtype=object),
        np.asarray(items, dtype=object),
        None,
        min_seq_len,
        item_order=item_order,
    )
    step("grouped by user")

    if index is not None:
        codes = []
        for it in kept:
            c = index.get(it)
            if c is None:
                raise DataError(f"{index_path}: item {it!r} (used in {inter_path.name}) has no codes")
            if not isinstance(c, list) or not c or not all(isinstance(t, str) for t in c):
                raise DataError(
                    f"{index_path}: item {it!r}: codes must be a non-empty list of token strings, got {c!r}"
                )
            codes.append(list(c))
        ds.item_codes = codes

    if item_meta is not None:
        rows, texts, missing = [], [], []
        for it in kept:
            meta = item_meta.get(it)
            if meta is None:
                if require_text and index is None:
                    raise DataError(
                        f"{item_path}: item {it!r} (used in {inter_path.name}) has no entry; "
                        f"every interacted item needs text (or give {index_path.name})"
                    )
                missing.append(it)
                meta = {}
            if not isinstance(meta, dict):
                raise DataError(f"{item_path}: item {it!r}: expected an object of fields, got {type(meta).__name__}")
            for key in TEXT_FIELDS:
                if not _is_text_value(meta.get(key)):
                    raise DataError(
                        f"{item_path}: item {it!r}: field {key!r} must be a string, a number or a list "
                        f"of them, got {meta.get(key)!r}"
                    )
            text = lcrec_text(meta)
            if not text and require_text and index is None:
                raise DataError(
                    f"{item_path}: item {it!r} has no text (title, brand, categories, description are all empty)"
                )
            rows.append({"item_id": it, **{k: meta.get(k, "") for k in TEXT_FIELDS}})
            texts.append(text)
        if missing:
            ds.notes.append(f"{len(missing)} item(s) have no entry in {item_path.name}")
        ds.item_info = pd.DataFrame(rows, index=pd.RangeIndex(len(rows), name="item"))
        if "categories" in ds.item_info.columns:
            ds.item_info["genres"] = [_categories(c) for c in ds.item_info["categories"]]
        ds.item_text = check_item_texts(
            texts,
            kept,
            item_path,
            require_text and index is None,
            ds.notes,
            f"codes come from {index_path.name}" if index is not None else "data.require_text is false",
        )
        unused = len(item_meta) - (len(kept) - len(missing))
        if unused > 0:
            ds.notes.append(f"{unused} item(s) of {item_path.name} have no interactions and are not in the catalogue")
    return ds


def _is_text_value(v: Any) -> bool:
    scalar = (str, int, float)
    return (
        v is None
        or (isinstance(v, scalar) and not isinstance(v, bool))
        or (isinstance(v, list) and all(isinstance(x, scalar) and not isinstance(x, bool) for x in v))
    )


def lcrec_text(meta: dict) -> str:
    """LC-Rec's item text: title, brand, categories and description, the latter truncated.

    A field that is empty once blanks are collapsed (``""``, ``"  "``, ``[]``, ``["", " "]``) is left out
    with its label, so an item with only empty fields has the empty text, never ``"Categories: "``.
    """
    parts = []
    for key in TEXT_FIELDS:
        v = meta.get(key)
        if v is None:
            continue
        if isinstance(v, list):
            v = ", ".join(s for s in (" ".join(str(x).split()) for x in v) if s)
        v = " ".join(str(v).split())
        if key == "description":
            v = v[:500]
        if v:
            parts.append(f"{key.capitalize()}: {v}")
    return ". ".join(parts)


def _categories(c: Any) -> list[str]:
    if isinstance(c, list):
        return [str(x) for x in c]
    if isinstance(c, str) and c:
        return [x.strip() for x in c.split(",") if x.strip()]
    return []
