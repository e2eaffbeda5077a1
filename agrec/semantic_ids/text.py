"""Item text templates: what the text encoder reads for each item.

A template is a ``str.format`` string over the columns of ``SeqDataset.item_info`` (list columns such as
genres are joined with ", "; a format spec truncates, e.g. ``{description:.500}``). A part in square
brackets is optional: it is dropped when every field inside it is empty, so items without a brand do not
read "Brand: ." — ``"{title}[. Brand: {brand}]"``. ``"auto"`` uses the text the loader built (the same
templates, see :data:`TEMPLATES`).
"""

from __future__ import annotations

import re
import string
from typing import Any

import pandas as pd

from agrec.data.dataset import SeqDataset
from agrec.errors import ConfigError, DataError

TEMPLATES: dict[str, str] = {
    # MovieLens: title, year, genres (what the paper's prompt-free tokeniser would see for a movie).
    "movielens": "{title}[ ({year})][. Genres: {genres}]",
    # Amazon (LC-Rec / LETTER item.json): title, brand, categories, description truncated.
    "amazon": "[Title: {title}][. Brand: {brand}][. Categories: {categories}][. Description: {description:.500}]",
    "title": "{title}",
}

_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")


def resolve_template(template: str) -> str | None:
    """The format string a config value names (None for ``"auto"``)."""
    if template == "auto":
        return None
    return TEMPLATES.get(template, template)


def _fields(fmt: str) -> list[str]:
    try:
        return [f for _, f, _, _ in string.Formatter().parse(fmt) if f]
    except ValueError as e:
        raise ConfigError(f"semantic_ids.template {fmt!r} is not a valid format string: {e}") from None


def _value(v: Any) -> str:
    """A field as text: blanks collapsed, None / NaN / NA empty, lists joined without their empty entries."""
    if isinstance(v, (list, tuple)) or (hasattr(v, "tolist") and getattr(v, "ndim", 0) == 1):
        return ", ".join(s for s in (_value(x) for x in list(v)) if s)
    if v is None or (not isinstance(v, str) and pd.api.types.is_scalar(v) and pd.isna(v)):
        return ""
    return " ".join(str(v).split())


def render(template: str, row: dict[str, Any]) -> str:
    """Fill ``template`` from ``row``; optional ``[...]`` parts with only empty fields are dropped."""
    values = {k: _value(v) for k, v in row.items()}

    def fill(part: str) -> str:
        try:
            return part.format(**values)
        except (KeyError, IndexError) as e:
            raise ConfigError(
                f"semantic_ids.template: field {e} is not an item column (available: {sorted(values)})"
            ) from None

    # Fill plain and optional parts separately: a filled value may itself contain braces.
    out, pos = [], 0
    for m in _OPTIONAL.finditer(template):
        out.append(fill(template[pos : m.start()]))
        part = m.group(1)
        if any(values.get(f, "") for f in _fields(part)):
            out.append(fill(part))
        pos = m.end()
    out.append(fill(template[pos:]))
    return " ".join("".join(out).split())


def item_texts(ds: SeqDataset, template: str = "auto") -> list[str]:
    """One text per item, ``len == ds.n_items``.

    Raises a :class:`DataError` naming the first item whose text is empty (an empty text would make
    all such items share one embedding and, later, one code).
    """
    fmt = resolve_template(template)
    if fmt is None:
        if ds.item_text is None:
            raise DataError(
                f"{ds.name}: the dataset has no item text (it was loaded from codes only); "
                f"the semantic-ID stage needs text to embed, or an index.json with codes"
            )
        texts = list(ds.item_text)
    else:
        _fields(fmt)
        info = ds.item_info
        if not isinstance(info, pd.DataFrame) or len(info) != ds.n_items:
            raise DataError(
                f"{ds.name}: no item table to fill the template from ({len(info)} rows for "
                f"{ds.n_items} items); use template: auto"
            )
        fields = _fields(fmt)
        if not fields:  # every item would read the same
            raise ConfigError(f"semantic_ids.template {template!r} uses no item field (e.g. {{title}})")
        records = info.to_dict("records")
        texts = []
        for r in records:
            text = render(fmt, r)
            # Only labels ("Categories: ") and no field value: the text says nothing about the item.
            texts.append(text if any(_value(r.get(f)) for f in fields) else "")
    for i, t in enumerate(texts):
        if not t.strip():
            raise DataError(
                f"{ds.name}: item {ds.item_ids[i]!r} has an empty text (template {template!r}): "
                f"all its fields are empty"
            )
    return texts
