"""The item <-> semantic-ID table shared by the tokenizer stage, the LM and the decoder.

Each item has one code per level (``n_levels`` levels, level ``l`` drawing from ``codebook_sizes[l]``
codes). As tokens, level ``l`` code ``c`` is written ``<{letter}_{c}>`` with letters a, b, c, d, e, …
(the LC-Rec / LETTER / AGRec convention: ``<a_35><b_11><c_23><d_77>``). The table is a bijection
when no two items share a full code sequence (:meth:`CodeTable.is_collision_free`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agrec.errors import DataError
from agrec.io import atomic_write_json

LEVEL_LETTERS = "abcdefghij"
_TOKEN_RE = re.compile(r"^<([a-j])_(\d+)>$")


def code_token(level: int, code: int) -> str:
    """``code_token(0, 35) == "<a_35>"``."""
    return f"<{LEVEL_LETTERS[level]}_{code}>"


def parse_code_token(token: str) -> tuple[int, int]:
    """``parse_code_token("<b_11>") == (1, 11)``; a :class:`DataError` for anything else."""
    m = _TOKEN_RE.match(token)
    if m is None:
        raise DataError(f"{token!r} is not a code token of the form <a_12>")
    return LEVEL_LETTERS.index(m.group(1)), int(m.group(2))


@dataclass
class CodeTable:
    """Semantic IDs of all items.

    Attributes:
        codes: ``[n_items, n_levels]`` int64, row ``i`` is item ``i``'s code sequence.
        codebook_sizes: number of codes available at each level, ``len == n_levels``.
        item_ids: raw item id of each row (for ``index.json`` export), or None.
    """

    codes: np.ndarray
    codebook_sizes: tuple[int, ...]
    item_ids: list[str] | None = None

    def __post_init__(self) -> None:
        self.codes = np.asarray(self.codes, dtype=np.int64)
        self.codebook_sizes = tuple(int(k) for k in self.codebook_sizes)
        if self.codes.ndim != 2:
            raise ValueError(f"codes must be [n_items, n_levels], got shape {self.codes.shape}")
        if self.codes.shape[1] != len(self.codebook_sizes):
            raise ValueError(f"{self.codes.shape[1]} levels of codes but {len(self.codebook_sizes)} codebook sizes")
        if self.codes.shape[1] > len(LEVEL_LETTERS):
            raise ValueError(f"at most {len(LEVEL_LETTERS)} levels are supported, got {self.codes.shape[1]}")
        if self.codes.size and ((self.codes < 0).any() or (self.codes >= np.array(self.codebook_sizes)).any()):
            raise ValueError("a code is outside its level's codebook")
        if self.item_ids is not None and len(self.item_ids) != len(self.codes):
            raise ValueError(f"{len(self.item_ids)} item ids for {len(self.codes)} code rows")

    @property
    def n_items(self) -> int:
        return int(self.codes.shape[0])

    @property
    def n_levels(self) -> int:
        return int(self.codes.shape[1])

    def item_tokens(self, item: int) -> list[str]:
        """The token strings of one item, e.g. ``["<a_35>", "<b_11>", "<c_23>", "<d_77>"]``."""
        return [code_token(lvl, int(c)) for lvl, c in enumerate(self.codes[item])]

    def all_tokens(self) -> list[str]:
        """Every token the table can use, level by level (``sum(codebook_sizes)`` strings); this is
        what the LM's vocabulary is extended with."""
        return [code_token(lvl, c) for lvl, k in enumerate(self.codebook_sizes) for c in range(k)]

    def n_collisions(self) -> int:
        """Items that share their full code sequence with an earlier item."""
        return int(self.n_items - len(np.unique(self.codes, axis=0))) if self.n_items else 0

    def is_collision_free(self) -> bool:
        return self.n_collisions() == 0

    def item_of_codes(self) -> dict[tuple[int, ...], int]:
        """The inverse map code-sequence -> item; raises if the table is not a bijection."""
        inv = {tuple(int(c) for c in row): i for i, row in enumerate(self.codes)}
        if len(inv) != self.n_items:
            raise ValueError(f"{self.n_collisions()} collision(s): the table is not a bijection")
        return inv

    # -- persistence -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"codebook_sizes": list(self.codebook_sizes), "codes": self.codes.tolist(), "item_ids": self.item_ids}

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict(), indent=None)

    @classmethod
    def load(cls, path: str | Path) -> "CodeTable":
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            return cls(codes=np.asarray(d["codes"], dtype=np.int64).reshape(-1, len(d["codebook_sizes"])),
                       codebook_sizes=tuple(d["codebook_sizes"]), item_ids=d.get("item_ids"))
        except FileNotFoundError:
            raise DataError(f"{path}: file not found") from None
        except (json.JSONDecodeError, KeyError, ValueError) as e:
            raise DataError(f"{path}: not a valid code table: {e}") from None
