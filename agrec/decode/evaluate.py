"""Evaluation of AGRec and its ablations (paper Tables 3 and 5) on the leave-one-out split.

Every row ranks all items for every evaluated user, with the user's own history excluded (the
RecBole full-sort protocol, docs/design.md §4.6) unless ``evaluation.exclude_history`` is false. α (and τ)
are chosen on the validation item; the test item is only ever scored.

The auxiliary models are top-n scorers (:mod:`agrec.scorers`: a GNN or SASRec), asked per target: the
validation item is ranked with scores that saw the training split only, the test item with scores that
may also have seen the validation item (``gnn.train.test_graph`` for the GNNs), never the test item.

Rows (``<s>`` is a scorer of ``evaluation.scorers``; GNN rows keep their names ``GNN only (lightgcn)``):

- ``w/o Graph``: plain trie-constrained beam search (α = 0);
- ``GNN only (<gnn>)`` / ``SASRec only``: the scorer's own full-sort ranking ("w/o Seq" in the paper);
- ``AGRec (<s>)``: the beam search steered by ``<s>``'s FSM at the α, τ chosen on validation (with
  ``evaluation.scorer``);
- ``α = 1 (<scorer>)``: the decoder driven by the FSM alone (with ``agg="sum"`` its top-n equals the scorer's);
- the released code's variants at the chosen α: ``mix="logit"``, ``state="last_token"``, and all of
  its choices together (logit mixing, last-token states, max aggregation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch

from agrec.data.split import LeaveOneOutSplit
from agrec.decode.beam import DecodeResult, generate_items_multi
from agrec.decode.point import DecodePoint
from agrec.decode.config import DecodeConfig
from agrec.decode.rank import rank_by_scores
from agrec.decode.shard import SINGLE, all_gather_objects, shard_blocks
from agrec.decode.trie import ItemTrie
from agrec.errors import AgrecError
from agrec.lm.distributed import DistEnv
from agrec.metrics import evaluate_rankings
from agrec.scorers import only_row

if TYPE_CHECKING:
    from agrec.config import Profile

TARGETS = ("valid", "test")


@dataclass
class EvalInputs:
    """What one evaluation target needs, for the evaluated users.

    Attributes:
        users: ``[U]`` user indices.
        prompts: per user, the LM prompt's token ids.
        exclude: per user, the history items that must not be recommended (None: keep them).
        targets: ``[U]`` the held-out item per user.
    """

    users: np.ndarray
    prompts: list[list[int]]
    exclude: list[np.ndarray] | None
    targets: np.ndarray


def validation_users(n_users: int, select_users: int | None, seed: int) -> np.ndarray:
    """The users whose validation item is evaluated: all ``n_users``, or ``select_users`` of them drawn with
    ``seed`` (sorted; the same for every process and every run of the profile)."""
    if select_users is None or select_users >= n_users:
        return np.arange(n_users)
    return np.sort(np.random.default_rng(seed).choice(n_users, size=select_users, replace=False))


def unselected_users(profile: Profile, n_users: int, n: int) -> np.ndarray:
    """``n`` of ``n_users`` users whose validation item chose nothing under ``profile`` (sorted, drawn with its
    seed; all of them if fewer): outside the decode stage's α-selection sample (``evaluation.select_users``, where
    it is a sample) and the LM's epoch-selection sample (``lm.select_users`` under ``lm.select: ndcg``, drawn over
    the users the LM trained on). Studies that compare trained models on validation read these users, so that no
    model is scored on the users that picked its own epoch or α. Where α is chosen on every validation user
    (``evaluation.select_users`` None or above ``n_users``), no user is outside it and it excludes none.
    (SASRec and the GNNs choose their epochs on every validation user; no user is outside those.)"""
    chose = [np.zeros(0, dtype=np.int64)]
    ev, lm = profile.evaluation, profile.lm
    if ev.select_users is not None and ev.select_users < n_users:
        chose.append(validation_users(n_users, ev.select_users, profile.seed))
    if lm.select == "ndcg":
        n_lm = min(lm.max_users or n_users, n_users)
        chose.append(validation_users(n_lm, lm.select_users, profile.seed))
    pool = np.setdiff1d(np.arange(n_users), np.concatenate(chose))
    if n >= len(pool):
        return pool
    return np.sort(np.random.default_rng(profile.seed).choice(pool, size=n, replace=False))


def build_inputs(
    split: LeaveOneOutSplit,
    prompt_fn: Callable[[Any], list[int]],  # a history (item ids, list or array) -> prompt token ids
    target: str,
    users: np.ndarray,
    exclude_history: bool = True,
) -> EvalInputs:
    """Prompts, exclusions and targets of ``users`` for ``target`` ("valid" or "test")."""
    histories = [split.history(int(u), target) for u in users]
    return EvalInputs(
        users=users,
        prompts=[prompt_fn(h) for h in histories],
        exclude=histories if exclude_history else None,
        targets=split.targets(target)[users],
    )


def scorer_rankings(
    scorer: Any, inputs: dict[str, EvalInputs], k: int, batch_size: int = 512, env: DistEnv | None = None
) -> dict[str, DecodeResult]:
    """Per target, a scorer's top-``k`` items of each evaluated user, history excluded.

    ``scorer.score_users(users, target)`` (:class:`agrec.scorers.TopNScorer`) is asked for ``target``'s own
    scores — train-only for ``"valid"``, train + validation for ``"test"`` — in batches of ``batch_size``
    users, and only the top ``k`` survive: memory is ``[batch_size, n_items] + [U, k]`` per scorer, not
    ``[U, n_items]`` per target. ``k = max(top_n, beam_size)`` serves both the FSM (its first ``top_n``
    columns equal :func:`top_n_items`) and the scorer's own row (its first ``beam_size`` columns).

    With several processes (``env``), each scores a contiguous range of the same batches and every process
    receives all of them (:mod:`agrec.decode.shard`), so the result does not depend on the process count.

    Returns:
        ``{target: DecodeResult(items [U, k], scores [U, k])}`` (-1 / -inf pad users with < k candidates).
    """
    env = env or SINGLE
    out = {}
    for target, inp in inputs.items():
        parts = []
        for s in shard_blocks(len(inp.users), batch_size, env.rank, env.world):
            scores = scorer.score_users(inp.users[s : s + batch_size], target)
            ex = None if inp.exclude is None else inp.exclude[s : s + batch_size]
            parts.append(rank_by_scores(scores, k, ex))
            del scores  # one [batch_size, n_items] block at a time
        parts = [p for per_rank in all_gather_objects(env, parts) for p in per_rank]
        out[target] = DecodeResult(
            items=torch.cat([p.items for p in parts]), scores=torch.cat([p.scores for p in parts])
        )
    return out


def subset(inputs: EvalInputs, positions: np.ndarray) -> EvalInputs:
    """The users at ``positions`` of ``inputs`` (a process's shard), in that order."""
    pos = [int(i) for i in positions]
    return EvalInputs(
        users=inputs.users[positions],
        prompts=[inputs.prompts[i] for i in pos],
        exclude=None if inputs.exclude is None else [inputs.exclude[i] for i in pos],
        targets=inputs.targets[positions],
    )


@dataclass
class Row:
    """One line of the ablation table: its metrics per target, and its rankings unless a sink took them."""

    name: str
    point: DecodePoint | None  # where the beam search decodes it; None: a scorer's own ranking (``only``)
    results: dict[str, DecodeResult] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    only: str | None = None  # the scorer whose full-sort ranking the row is (no decoding)

    @property
    def settings(self) -> dict[str, Any]:
        """What ``results.json`` records of the row: its point (:meth:`DecodePoint.to_json`) or its scorer."""
        return self.point.to_json() if self.point is not None else {"scorer": self.only}


class Evaluator:
    """Decodes and scores rows on the two targets, reusing nothing implicitly.

    Args:
        model: the fine-tuned LM.
        trie: the item trie over its code-token ids.
        pad_token_id: its pad token id.
        inputs: ``{"valid": EvalInputs, "test": EvalInputs}``.
        rankings: ``{scorer name: {target: DecodeResult [U, K]}}`` from :func:`scorer_rankings` with
            ``K >= max(decode.top_n, decode.beam_size)``.
        decode: the profile's decoding settings (beam size, top_n, agg …); α/τ/mix/state vary per row.
        ks: metric cut-offs.
        sink: ``sink(row, target, result) -> metrics`` receives every decoded ranking as it is produced; the
            default keeps it in ``row.results`` and scores it on ``inputs[target].targets``. The decode stage's
            sink writes it to disk instead (and, sharded, gathers the processes' rows first), so that no
            row's rankings stay in memory.
    """

    def __init__(
        self,
        model: Any,
        trie: ItemTrie,
        pad_token_id: int,
        inputs: dict[str, EvalInputs],
        rankings: dict[str, dict[str, DecodeResult]],
        decode: DecodeConfig,
        ks: Sequence[int],
        log: Callable[[str], None] = print,
        sink: Callable[[Row, str, DecodeResult], dict[str, float]] | None = None,
    ):
        self.model, self.trie, self.pad_token_id = model, trie, pad_token_id
        self.inputs, self.rankings, self.decode, self.ks, self.log = inputs, rankings, decode, list(ks), log
        self.sink = sink or self._keep
        self.k = decode.beam_size
        for name, per_target in rankings.items():
            for target, r in per_target.items():
                if r.items.shape[1] < max(decode.top_n, self.k):
                    raise AgrecError(
                        f"rankings of {name!r} / {target} hold {r.items.shape[1]} items per user; "
                        f"decoding needs max(top_n, beam_size) = {max(decode.top_n, self.k)}"
                    )

    def fsm_inputs(self, scorer: str, target: str, top_n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The scorer's top-n items and scores per user (history excluded), ``([U, n], [U, n])``; ``n`` is
        ``top_n`` (a row's own setting, e.g. a decode variant's) or the profile's ``decode.top_n``."""
        n = self.decode.top_n if top_n is None else top_n
        r = self.rankings[scorer][target]
        if r.items.shape[1] < n:
            raise AgrecError(
                f"rankings of {scorer!r} / {target} hold {r.items.shape[1]} items per user; top_n = {n} needs that many"
            )
        return r.items[:, :n], r.scores[:, :n]

    def _keep(self, row: Row, target: str, result: DecodeResult) -> dict[str, float]:
        row.results[target] = result
        return evaluate_rankings(result.items.numpy(), self.inputs[target].targets, self.ks)

    def _score(self, row: Row, target: str, result: DecodeResult) -> None:
        row.metrics[target] = self.sink(row, target, result)

    def new_row(self, name: str, scorer: str | None, **settings: Any) -> Row:
        """An empty row: the beam search steered by ``scorer``'s FSM at the point ``settings`` (``alpha``,
        ``tau`` and other DecodeConfig fields; α and τ default to the profile's); :meth:`decode_rows` fills in
        its targets."""
        alpha = settings.pop("alpha", self.decode.alpha)
        tau = settings.pop("tau", self.decode.tau)
        return Row(name=name, point=DecodePoint.of(alpha, tau, scorer, **settings))

    def decode_rows(self, rows: Sequence[Row], target: str) -> None:
        """Decode ``rows`` (made by :meth:`new_row`) on ``target`` in one pass over its users: each batch's
        prompts are encoded once for all of them (:func:`~agrec.decode.beam.generate_items_multi`, the same
        rankings as one decode per row). A row listed twice is decoded once."""
        rows = list({id(r): r for r in rows}.values())
        if not rows:
            return
        inp = self.inputs[target]
        runs = []
        for row in rows:
            if row.point is None:
                raise ValueError(f"row {row.name!r} is a scorer's own ranking; it is not decoded")
            cfg = row.point.config(self.decode)
            scorer = row.point.scorer
            fsm = self.fsm_inputs(scorer, target, cfg.top_n) if (cfg.uses_graph and scorer is not None) else None
            runs.append((cfg, fsm))
        results = generate_items_multi(
            self.model, inp.prompts, self.trie, runs, exclude=inp.exclude, k=self.k, pad_token_id=self.pad_token_id
        )
        for row, result in zip(rows, results, strict=True):
            self._score(row, target, result)
            self.log(f"  {row.name}: {target} {_fmt(row.metrics[target])}")

    def scorer_row(self, scorer: str, targets: Sequence[str] = TARGETS) -> Row:
        """The scorer's own full-sort ranking ("w/o Seq"): ``GNN only (<gnn>)``, ``SASRec only``."""
        row = Row(name=only_row(scorer), point=None, only=scorer)
        for target in targets:
            r = self.rankings[scorer][target]
            self._score(row, target, DecodeResult(items=r.items[:, : self.k], scores=r.scores[:, : self.k]))
        self.log(f"  {row.name}: " + "  ".join(f"{t} {_fmt(row.metrics[t])}" for t in targets))
        return row


def choose(curve: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """The grid point with the best validation ``metric``; ties go to the smaller α, then the
    smaller τ (the simpler model), so the choice is deterministic."""
    if not curve:
        raise ValueError("empty α/τ grid")
    return max(curve, key=lambda p: (p["valid"][metric], -p["alpha"], -p["tau"]))


def _fmt(m: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in m.items() if k.endswith("@10"))
