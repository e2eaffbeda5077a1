"""What every loader accepts as a user or item id, checked the same way everywhere.

An id is a non-empty string without control, format, line/paragraph-separator or surrogate characters (Unicode
categories Cc, Cf, Zl, Zp, Cs). Such characters are invisible in every message and table, and some are lost
on the way: NumPy's fixed-width strings drop trailing NULs, so ``"0\\x00"`` would silently become user ``"0"``
and merge two users. An id made only of spaces counts as empty.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
import pandas as pd

from agrec.errors import DataError, shorten

BAD_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


@functools.cache
def bad_characters() -> re.Pattern[str]:
    """A character class matching every code point of :data:`BAD_CATEGORIES` (built once, from unicodedata)."""
    ranges: list[tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp)) in BAD_CATEGORIES:
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    body = "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)
    return re.compile(f"[{body}]")


def id_problem(value: str) -> str | None:
    """Why ``value`` is not a valid id (None when it is)."""
    if not value.strip():
        return "is empty"
    m = bad_characters().search(value)
    if m is not None:
        ch = m.group()
        return (
            f"holds the character U+{ord(ch):04X} ({unicodedata.name(ch, unicodedata.category(ch))}), a "
            f"control or invisible character"
        )
    return None


def check_id_column(column: pd.Series, where: str, what: str, first_line: int = 2) -> None:
    """Raise :class:`DataError` ``"<where>: line N: <what> <id> is empty / holds …"`` for the first invalid id of
    a table column of strings (vectorised: one regex pass over the column)."""
    text = column.astype(str)
    bad = (text.str.strip() == "") | text.str.contains(bad_characters(), regex=True)
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        v = text.iloc[row]
        raise DataError(f"{where}: line {row + first_line}: {what} {shorten(v)} {id_problem(v)}")
