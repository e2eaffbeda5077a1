"""Target-aware top-n scorers: the auxiliary models that can drive AGRec's rankable FSM.

The contract shared by the GNNs, SASRec (``agrec.baselines``) and the decode stage::

    scorer.score_users(users: np.ndarray [U] of user indices, target: "valid" | "test")
        -> torch.FloatTensor [U, n_items]

Scores for ``"valid"`` may use the training split only; scores for ``"test"`` may use the training split
plus each user's validation item, never the test item. History exclusion is the caller's job (the
decode stage masks train items for valid, train + validation items for test).

:func:`load_scorer` resolves a name: a GNN (``lightgcn``, ``sgl``, ``xsimgcl``) becomes a
:class:`GNNScorer` over the gnn stage's model — the training-split model for ``"valid"``, the test-time
model of ``gnn.train.test_graph`` for ``"test"``; ``"sasrec"`` is trained (or reused) by
``agrec.baselines.stage.train_sasrec``, imported only when asked for; ``"lm"``, the LM's own item head
(:class:`agrec.lm.item_scorer.LMItemScorer`), is built from the trained LM the caller passes (``lm=``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

import numpy as np
import torch

from agrec.decode.config import SCORERS
from agrec.errors import AgrecError, ConfigError
from agrec.gnn.config import GNN_MODELS

if TYPE_CHECKING:
    from agrec.data.stage import RunData

TARGETS: tuple[str, ...] = ("valid", "test")
__all__ = ["SCORERS", "TARGETS", "TopNScorer", "GNNScorer", "load_scorer", "only_row", "agrec_row"]
# Display names of the scorers in labels ("SASRec only", Table 2's "AGRec (LightGCN)"); a GNN's own ablation row keeps
# its historical form "GNN only (<name>)".
DISPLAY: dict[str, str] = {
    "lightgcn": "LightGCN",
    "sgl": "SGL",
    "xsimgcl": "XSimGCL",
    "sasrec": "SASRec",
    "lm": "LM items",
}


@runtime_checkable
class TopNScorer(Protocol):
    """Anything that scores every item for a batch of users, per evaluation target."""

    def score_users(self, users: np.ndarray, target: str) -> torch.Tensor:
        """Scores ``[U, n_items]`` (float) of ``users [U]`` for ``target`` (``"valid"`` or ``"test"``)."""
        ...


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise AgrecError(f"target must be one of {list(TARGETS)}, got {target!r}")
    return target


class GNNScorer:
    """A GNN as a :class:`TopNScorer`: ``valid_model`` scores the validation item, the test-time model
    (built on first use by ``test_model``, e.g. :func:`agrec.gnn.stage.gnn_for_target`) the test item.

    Scores are ``full_sort_predict`` = ⟨φ(u), ψ(v)⟩, computed in user batches of ``batch_size``.
    """

    def __init__(self, name: str, valid_model: Any, test_model: Callable[[], Any] | Any, batch_size: int = 1024):
        self.name, self.batch_size = name, batch_size
        self._models: dict[str, Any] = {"valid": valid_model}
        self._test = test_model

    def model(self, target: str) -> Any:
        """The GNN that scores ``target`` (eval mode)."""
        if check_target(target) not in self._models:
            self._models[target] = self._test() if callable(self._test) else self._test
        return self._models[target]

    def score_users(self, users: np.ndarray, target: str) -> torch.Tensor:
        model = self.model(target)
        users = np.asarray(users, dtype=np.int64)
        out = [torch.zeros(0, model.n_items)]
        with torch.no_grad():
            for s in range(0, len(users), self.batch_size):
                ids = torch.as_tensor(users[s : s + self.batch_size], dtype=torch.long)
                out.append(model.full_sort_predict(ids).float().cpu())
        return torch.cat(out)


def load_scorer(data: RunData, name: str, lm: Any = None) -> TopNScorer:
    """The scorer ``name`` for a run: a GNN of the gnn stage, ``"sasrec"`` or ``"lm"`` (see module doc), built
    from the run's loaded data stage (:class:`~agrec.data.stage.RunData`, from ``load_run_data(session)``), which
    is neither reloaded nor re-checked. ``lm``: the trained LM (:class:`agrec.lm.bundle.LMBundle`), which ``"lm"``
    needs; the other scorers ignore it."""
    # The stage modules train the models; they sit a layer above this one, so they are imported here, on use.
    if name in GNN_MODELS:
        from agrec.gnn.stage import gnn_for_target, train_gnn

        return GNNScorer(name, train_gnn(data, name), lambda: gnn_for_target(data, name, "test"))
    if name == "sasrec":
        from agrec.baselines.stage import train_sasrec  # the sasrec branch; imported only when used

        return train_sasrec(data)
    if name == "lm":
        if lm is None:
            raise ConfigError("scorer 'lm' is the LM's own item head: load_scorer needs the trained LM (lm=)")
        from agrec.lm.item_scorer import LMItemScorer

        return LMItemScorer(lm.model, data.split, lm.prompt_ids, lm.pad_token_id, data.profile.decode.batch_size)
    raise ConfigError(f"unknown scorer {name!r}; known: {list(SCORERS)}")


def only_row(name: str) -> str:
    """The ablation row of a scorer's own ranking: ``GNN only (lightgcn)``, ``SASRec only``."""
    return f"GNN only ({name})" if name in GNN_MODELS else f"{DISPLAY.get(name, name)} only"


def agrec_row(name: str) -> str:
    """The row of AGRec with ``name`` driving the FSM: ``AGRec (lightgcn)``, ``AGRec (sasrec)``."""
    return f"AGRec ({name})"
