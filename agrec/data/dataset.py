"""The one in-memory type every loader produces: :class:`SeqDataset`.

Users and items are re-indexed to contiguous integers ``0..n-1`` (the order of first appearance in
the source file, so indices are deterministic). Each user's sequence is chronological; ties in
time keep the source file's order (a stable sort), which decides the test item for users who rated
their last items in the same second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from agrec.errors import DataError


@dataclass
class SeqDataset:
    """Chronological interaction sequences with id maps and optional item text / codes.

    Attributes:
        name: dataset name (``ml-100k``, ``Instruments`` …).
        user_ids: raw user id of each user index, ``len == n_users``.
        item_ids: raw item id of each item index, ``len == n_items``.
        sequences: per user, the item indices in chronological order (int64 arrays).
        timestamps: per user, the timestamps aligned with ``sequences`` (None when the source has none).
        item_text: the text describing each item (None when the source gives only codes).
        item_info: a DataFrame indexed by item index with the raw item fields (title, year, genres …),
            used by reports and plots; may be empty.
        item_codes: per item, the given semantic-ID tokens (``["<a_1>", "<b_2>", …]``) when the source
            ships an ``index.json``; None otherwise.
        n_filtered_users: users removed because their sequence was shorter than ``min_seq_len``.
        n_filtered_interactions: the interactions of those users.
        notes: human-readable remarks produced while loading (what was filtered and why).
    """

    name: str
    user_ids: list[str]
    item_ids: list[str]
    sequences: list[np.ndarray]
    timestamps: list[np.ndarray] | None = None
    item_text: list[str] | None = None
    item_info: pd.DataFrame = field(default_factory=pd.DataFrame)
    item_codes: list[list[str]] | None = None
    n_filtered_users: int = 0
    n_filtered_interactions: int = 0
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.sequences) != len(self.user_ids):
            raise DataError(f"{self.name}: {len(self.sequences)} sequences for {len(self.user_ids)} users")
        if self.item_text is not None and len(self.item_text) != len(self.item_ids):
            raise DataError(f"{self.name}: {len(self.item_text)} item texts for {len(self.item_ids)} items")
        if self.item_codes is not None and len(self.item_codes) != len(self.item_ids):
            raise DataError(f"{self.name}: {len(self.item_codes)} item codes for {len(self.item_ids)} items")

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    def seq_lengths(self) -> np.ndarray:
        """Sequence length per user, shape ``[n_users]``."""
        return np.fromiter((len(s) for s in self.sequences), dtype=np.int64, count=self.n_users)

    def item_popularity(self) -> np.ndarray:
        """Number of interactions per item, shape ``[n_items]``."""
        if self.n_users == 0:
            return np.zeros(self.n_items, dtype=np.int64)
        return np.bincount(np.concatenate(self.sequences), minlength=self.n_items)

    @cached_property
    def _user_pos(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.user_ids)}

    @cached_property
    def _item_pos(self) -> dict[str, int]:
        return {it: i for i, it in enumerate(self.item_ids)}

    def user_index(self, raw_id: str) -> int:
        """Index of a raw user id; a :class:`DataError` names an unknown one."""
        try:
            return self._user_pos[str(raw_id)]
        except KeyError:
            raise DataError(f"{self.name}: unknown user id {raw_id!r}") from None

    def item_index(self, raw_id: str) -> int:
        """Index of a raw item id; a :class:`DataError` names an unknown one."""
        try:
            return self._item_pos[str(raw_id)]
        except KeyError:
            raise DataError(f"{self.name}: unknown item id {raw_id!r}") from None

    def item_title(self, item: int) -> str:
        """A short display name for an item: its title if known, else its text, else its raw id."""
        if "title" in self.item_info.columns:
            return str(self.item_info.at[item, "title"])
        if self.item_text is not None:
            return self.item_text[item][:80]
        return self.item_ids[item]
