"""Evaluation of AGRec and its ablations (paper Tables 3 and 5) on the leave-one-out split.

Every row ranks all items for every evaluated user, with the user's own history excluded (the
RecBole full-sort protocol, DESIGN §4.6) unless ``evaluation.exclude_history`` is false. α (and τ)
are chosen on the validation item; the test item is only ever scored.

Rows:

- ``w/o Graph``: plain trie-constrained beam search (α = 0);
- ``GNN only (<gnn>)``: the GNN's full-sort ranking ("w/o Seq" in the paper);
- ``AGRec (<gnn>)``: the GNN-steered beam search at the α, τ chosen on validation;
- ``α = 1 (<gnn>)``: the decoder driven by the FSM alone (with ``agg="sum"`` its top-n equals the GNN's);
- the released code's variants at the chosen α: ``mix="logit"``, ``state="last_token"``, and all of
  its choices together (logit mixing, last-token states, max aggregation).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from agrec.data.split import LeaveOneOutSplit
from agrec.decode.beam import DecodeResult, generate_items
from agrec.decode.config import DecodeConfig, EvalConfig
from agrec.decode.rank import rank_by_scores, top_n_items
from agrec.decode.trie import ItemTrie
from agrec.metrics import evaluate_rankings

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


def build_inputs(split: LeaveOneOutSplit, prompt_fn: Callable[[Sequence[int]], list[int]], target: str,
                 users: np.ndarray, exclude_history: bool = True) -> EvalInputs:
    """Prompts, exclusions and targets of ``users`` for ``target`` ("valid" or "test")."""
    histories = [split.history(int(u), target) for u in users]
    return EvalInputs(users=users, prompts=[prompt_fn(h) for h in histories],
                      exclude=histories if exclude_history else None, targets=split.targets(target)[users])


def gnn_scores(model: Any, users: np.ndarray, batch_size: int = 1024) -> torch.Tensor:
    """Full-sort scores ``[U, n_items]`` of a GNN (``full_sort_predict``), computed in user batches."""
    out = []
    with torch.no_grad():
        for s in range(0, len(users), batch_size):
            ids = torch.as_tensor(users[s:s + batch_size], dtype=torch.long)
            out.append(model.full_sort_predict(ids).float().cpu())
    return torch.cat(out)


@dataclass
class Row:
    """One line of the ablation table: its rankings and metrics per target."""

    name: str
    settings: dict[str, Any]
    results: dict[str, DecodeResult] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


class Evaluator:
    """Decodes and scores rows on the two targets, reusing nothing implicitly.

    Args:
        model, trie, pad_token_id: the fine-tuned LM, the item trie over its code-token ids, its pad id.
        inputs: ``{"valid": EvalInputs, "test": EvalInputs}``.
        gnn_scores: ``{gnn name: {target: scores [U, n_items]}}``.
        decode: the profile's decoding settings (beam size, top_n, agg …); α/τ/mix/state vary per row.
        ks: metric cut-offs.
    """

    def __init__(self, model: Any, trie: ItemTrie, pad_token_id: int, inputs: dict[str, EvalInputs],
                 gnn_scores: dict[str, dict[str, torch.Tensor]], decode: DecodeConfig, ks: Sequence[int],
                 log: Callable[[str], None] = print):
        self.model, self.trie, self.pad_token_id = model, trie, pad_token_id
        self.inputs, self.scores, self.decode, self.ks, self.log = inputs, gnn_scores, decode, list(ks), log
        self.k = decode.beam_size
        self._fsm_inputs: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}

    def fsm_inputs(self, gnn: str, target: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The GNN's top-n items and scores per user (history excluded), ``([U, n], [U, n])``."""
        key = (gnn, target)
        if key not in self._fsm_inputs:
            self._fsm_inputs[key] = top_n_items(self.scores[gnn][target], self.decode.top_n,
                                                self.inputs[target].exclude)
        return self._fsm_inputs[key]

    def _score(self, row: Row, target: str, result: DecodeResult) -> None:
        row.results[target] = result
        row.metrics[target] = evaluate_rankings(result.items.numpy(), self.inputs[target].targets, self.ks)

    def decode_row(self, name: str, gnn: str | None, targets: Sequence[str] = TARGETS, **settings: Any) -> Row:
        """Beam search with ``settings`` (DecodeConfig fields) overriding the profile's on ``targets``."""
        cfg = dataclasses.replace(self.decode, **settings)
        row = Row(name=name, settings={"gnn": gnn if cfg.uses_graph else None, **settings})
        for target in targets:
            inp = self.inputs[target]
            fsm = self.fsm_inputs(gnn, target) if (cfg.uses_graph and gnn is not None) else None
            result = generate_items(self.model, inp.prompts, self.trie, fsm_inputs=fsm, cfg=cfg, exclude=inp.exclude,
                                    k=self.k, pad_token_id=self.pad_token_id)
            self._score(row, target, result)
        self.log(f"  {name}: " + "  ".join(f"{t} {_fmt(row.metrics[t])}" for t in targets))
        return row

    def gnn_row(self, gnn: str, targets: Sequence[str] = TARGETS) -> Row:
        """The GNN's own full-sort ranking ("w/o Seq")."""
        row = Row(name=f"GNN only ({gnn})", settings={"gnn": gnn})
        for target in targets:
            self._score(row, target, rank_by_scores(self.scores[gnn][target], self.k, self.inputs[target].exclude))
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
