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

    # -- LC-Rec / LETTER / AGRec index.json -------------------------------------------------------
    @classmethod
    def from_tokens(
        cls,
        tokens: list[list[str]],
        item_ids: list[str] | None = None,
        codebook_sizes: tuple[int, ...] | None = None,
        source: str = "codes",
    ) -> "CodeTable":
        """Build a table from per-item token lists (``[["<a_1>", "<b_2>", …], …]``, row ``i`` = item ``i``).

        Every item must have the same number of tokens, and token ``l`` must be of level ``l``
        (letter ``a`` first). ``codebook_sizes`` defaults to the largest code seen per level + 1.
        Duplicates are kept (see :func:`agrec.semantic_ids.dedup.make_collision_free`). A malformed
        entry is a :class:`DataError` naming ``source`` and the item.
        """

        def name(i: int) -> str:
            return repr(item_ids[i]) if item_ids is not None else f"#{i}"

        if item_ids is not None and len(item_ids) != len(tokens):
            raise DataError(f"{source}: {len(tokens)} code lists for {len(item_ids)} item ids")
        if not tokens:
            raise DataError(f"{source}: no items")
        n_levels = len(tokens[0]) if isinstance(tokens[0], (list, tuple)) else 0
        codes = np.zeros((len(tokens), n_levels), dtype=np.int64)
        for i, toks in enumerate(tokens):
            if not isinstance(toks, (list, tuple)) or len(toks) == 0:
                raise DataError(f"{source}: item {name(i)}: codes must be a non-empty list of tokens, got {toks!r}")
            if len(toks) != n_levels:
                raise DataError(
                    f"{source}: item {name(i)} has {len(toks)} codes, item {name(0)} has {n_levels}; "
                    f"every item needs the same number of levels"
                )
            for lvl, tok in enumerate(toks):
                if not isinstance(tok, str):
                    raise DataError(f"{source}: item {name(i)}: code {tok!r} is not a string like '<a_12>'")
                m = _TOKEN_RE.match(tok)
                if m is None:
                    raise DataError(f"{source}: item {name(i)}: {tok!r} is not a code token of the form <a_12>")
                if LEVEL_LETTERS.index(m.group(1)) != lvl:
                    raise DataError(
                        f"{source}: item {name(i)}: token {lvl + 1} is {tok!r}, expected level "
                        f"'{LEVEL_LETTERS[lvl]}' (<{LEVEL_LETTERS[lvl]}_…>) at that position"
                    )
                codes[i, lvl] = int(m.group(2))
        seen = tuple(int(v) + 1 for v in codes.max(axis=0))
        if codebook_sizes is None:
            codebook_sizes = seen
        elif len(codebook_sizes) != n_levels or any(k < s for s, k in zip(seen, codebook_sizes, strict=False)):
            raise DataError(f"{source}: codes need codebook sizes of at least {list(seen)}, got {list(codebook_sizes)}")
        return cls(
            codes=codes,
            codebook_sizes=tuple(codebook_sizes),
            item_ids=[str(x) for x in item_ids] if item_ids is not None else None,
        )

    @classmethod
    def from_index_json(
        cls, path: str | Path, item_ids: list[str] | None = None, codebook_sizes: tuple[int, ...] | None = None
    ) -> "CodeTable":
        """Read an LC-Rec ``X.index.json`` (``{item_id: ["<a_1>", "<b_2>", …]}``).

        Rows follow ``item_ids`` when given (each must be in the file; extra entries in the file are
        ignored), else the file's order. Collisions in the file are kept; make the table
        collision-free with :func:`agrec.semantic_ids.dedup.make_collision_free`.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"{path}: file not found") from None
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected an object {{item: [codes]}}, got {type(data).__name__}")
        if item_ids is None:
            item_ids = [str(k) for k in data]
        missing = [i for i in item_ids if str(i) not in data]
        if missing:
            raise DataError(f"{path}: item {missing[0]!r} has no codes ({len(missing)} item(s) missing)")
        return cls.from_tokens([data[str(i)] for i in item_ids], item_ids, codebook_sizes, source=str(path))

    def to_index_json(self, path: str | Path | None = None) -> dict[str, list[str]]:
        """The LC-Rec ``X.index.json`` mapping ``{item_id: [tokens]}`` (item ids default to the row
        index); written atomically to ``path`` when given."""
        ids = self.item_ids if self.item_ids is not None else [str(i) for i in range(self.n_items)]
        index = {str(ids[i]): self.item_tokens(i) for i in range(self.n_items)}
        if path is not None:
            atomic_write_json(path, index, indent=None)
        return index

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
            return cls(
                codes=np.asarray(d["codes"], dtype=np.int64).reshape(-1, len(d["codebook_sizes"])),
                codebook_sizes=tuple(d["codebook_sizes"]),
                item_ids=d.get("item_ids"),
            )
        except FileNotFoundError:
            raise DataError(f"{path}: file not found") from None
        except (json.JSONDecodeError, KeyError, ValueError) as e:
            raise DataError(f"{path}: not a valid code table: {e}") from None
