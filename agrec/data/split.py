"""Leave-one-out split: last item = test, second-to-last = validation, the rest = train."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agrec.data.dataset import SeqDataset
from agrec.errors import DataError


@dataclass
class LeaveOneOutSplit:
    """Per-user leave-one-out split of a :class:`SeqDataset`.

    Attributes:
        train: per user, the training prefix (all but the last two items), ``len >= 1``.
        valid: validation target per user, shape ``[n_users]``.
        test: test target per user, shape ``[n_users]``.
    """

    train: list[np.ndarray]
    valid: np.ndarray
    test: np.ndarray

    @property
    def n_users(self) -> int:
        return len(self.train)

    def history(self, user: int, target: str) -> np.ndarray:
        """The items a model may see when predicting ``target`` (``"valid"`` or ``"test"``) for ``user``.

        Validation sees the training prefix; test sees the training prefix plus the validation item.
        """
        if target == "valid":
            return self.train[user]
        if target == "test":
            return np.append(self.train[user], self.valid[user])
        raise ValueError(f"target must be 'valid' or 'test', got {target!r}")

    def targets(self, target: str) -> np.ndarray:
        """Target item per user for ``"valid"`` or ``"test"``, shape ``[n_users]``."""
        if target == "valid":
            return self.valid
        if target == "test":
            return self.test
        raise ValueError(f"target must be 'valid' or 'test', got {target!r}")

    def train_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """All (user, item) training interactions as two aligned int64 arrays of shape ``[n_train]``."""
        lengths = np.fromiter((len(t) for t in self.train), dtype=np.int64, count=self.n_users)
        users = np.repeat(np.arange(self.n_users, dtype=np.int64), lengths)
        items = np.concatenate(self.train).astype(np.int64) if self.n_users else np.zeros(0, np.int64)
        return users, items

    def sizes(self) -> dict[str, int]:
        return {
            "train": int(sum(len(t) for t in self.train)),
            "valid": int(len(self.valid)),
            "test": int(len(self.test)),
        }


def leave_one_out(ds: SeqDataset) -> LeaveOneOutSplit:
    """Split every user's chronological sequence; loaders already enforce ``len >= 3``."""
    short = [ds.user_ids[u] for u, s in enumerate(ds.sequences) if len(s) < 3]
    if short:
        raise DataError(
            f"{ds.name}: {len(short)} user(s) have fewer than 3 interactions and cannot be split "
            f"leave-one-out (first: user {short[0]!r}); raise data.min_seq_len to filter them"
        )
    train = [np.asarray(s[:-2], dtype=np.int64) for s in ds.sequences]
    valid = np.fromiter((s[-2] for s in ds.sequences), dtype=np.int64, count=ds.n_users)
    test = np.fromiter((s[-1] for s in ds.sequences), dtype=np.int64, count=ds.n_users)
    return LeaveOneOutSplit(train=train, valid=valid, test=test)
