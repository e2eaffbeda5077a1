"""SASRec as a target-aware top-n scorer (the scorer protocol of the decode stage) and its evaluation.

``score_users(users, "valid")`` reads each user's training sequence; ``score_users(users, "test")`` the training
sequence plus the validation item — what the LM's test prompt sees — never the test item. Evaluation ranks every
item with the user's history excluded (:func:`agrec.decode.rank.rank_by_scores`, RecBole's full-sort protocol)
and scores the ranking with :func:`agrec.metrics.evaluate_rankings`, as for the GNNs and the LM.
"""

from __future__ import annotations

import numpy as np
import torch

from agrec.baselines.sasrec import SASRec
from agrec.data.split import LeaveOneOutSplit
from agrec.decode.rank import rank_by_scores
from agrec.errors import AgrecError
from agrec.metrics import evaluate_rankings

TARGETS = ("valid", "test")


class SASRecScorer:
    """A trained SASRec bound to its split. ``name`` is ``"sasrec"``; ``n_items`` the number of items."""

    name = "sasrec"

    def __init__(self, model: SASRec, split: LeaveOneOutSplit, batch_users: int = 1024):
        self.model = model.eval()
        self.split = split
        self.n_items = model.n_items
        self.batch_users = batch_users

    def history(self, user: int, target: str) -> np.ndarray:
        """The input sequence for ``target``: the train part ("valid"), train + validation item ("test")."""
        if target not in TARGETS:
            raise AgrecError(f"target must be one of {list(TARGETS)}, got {target!r}")
        return self.split.history(int(user), target)

    @torch.no_grad()
    def score_users(self, users: np.ndarray, target: str) -> torch.Tensor:
        """Scores of every item for each user, ``[U, n_items]`` float32 on the CPU (history not masked)."""
        if target not in TARGETS:
            raise AgrecError(f"target must be one of {list(TARGETS)}, got {target!r}")
        users = np.asarray(users, dtype=np.int64).reshape(-1)
        if len(users) and (users.min() < 0 or users.max() >= self.split.n_users):
            bad = int(users[(users < 0) | (users >= self.split.n_users)][0])
            raise AgrecError(f"user index {bad} out of range 0..{self.split.n_users - 1}")
        out = [torch.zeros((0, self.n_items))]
        for start in range(0, len(users), self.batch_users):
            seq, lengths = self.model.encode_histories(
                [self.history(u, target) for u in users[start : start + self.batch_users]]
            )
            out.append(self.model.full_sort_predict(seq, lengths).float().cpu())
        return torch.cat(out)


def evaluate_sasrec(
    scorer: SASRecScorer, target: str, ks: tuple[int, ...] = (5, 10, 20), exclude_history: bool = True
) -> dict[str, float]:
    """HR@K / NDCG@K of every user on ``target``, ranking all items with the history (the scorer's input
    sequence) excluded."""
    was_training = scorer.model.training
    scorer.model.eval()
    try:
        rankings = []
        for start in range(0, scorer.split.n_users, scorer.batch_users):
            users = np.arange(start, min(start + scorer.batch_users, scorer.split.n_users))
            exclude = [scorer.history(int(u), target) for u in users] if exclude_history else None
            rankings.append(rank_by_scores(scorer.score_users(users, target), max(ks), exclude).items.numpy())
        return evaluate_rankings(np.concatenate(rankings), scorer.split.targets(target), ks)
    finally:
        scorer.model.train(was_training)
