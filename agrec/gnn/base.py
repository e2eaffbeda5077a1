"""What every auxiliary GNN shares: embeddings, propagation, full-sort scoring and top-n.

The decoder only talks to this interface (RecBole's verbs):

- ``full_sort_predict(user_ids [B]) -> scores [B, n_items]``: one matmul against all items;
- ``top_n(user_ids [B], n, exclude) -> (item_ids [B, n], scores [B, n])``: best first, with the
  user's history masked out;
- ``user_embeddings() [n_users, d]`` / ``item_embeddings() [n_items, d]``: the final φ(u), ψ(v);
- ``calculate_loss(batch) -> scalar``: the training objective of one BPR batch.

Score R(u, v) = ⟨φ(u), ψ(v)⟩ (AGRec §3.2). Final embeddings are computed once and cached while the
model is in eval mode; switching to train mode or loading weights drops the cache.
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterable, Sequence, cast

import numpy as np
import torch
from torch import nn

from agrec.errors import AgrecError
from agrec.gnn.graph import InteractionGraph, propagate
from agrec.gnn.sampler import BPRBatch

Exclude = None | str | Sequence[np.ndarray | Sequence[int] | torch.Tensor]


class GraphRecommender(nn.Module):
    """Base class: layer-0 user/item embeddings on the training graph.

    Subclasses implement :meth:`forward` (the final embeddings used for scoring) and
    :meth:`calculate_loss`. Only the two embedding tables are parameters (and the only entries of
    ``state_dict``); the adjacency is rebuilt from the graph.
    """

    name: ClassVar[str] = "base"
    config: Any  # the model's typed config (LightGCNConfig, …); subclasses are built as cls(config, graph)

    def __init__(self, graph: InteractionGraph, embedding_dim: int, n_layers: int):
        super().__init__()
        if embedding_dim <= 0:
            raise AgrecError(f"embedding_dim must be positive, got {embedding_dim}")
        if n_layers < 0:
            raise AgrecError(f"n_layers must be >= 0, got {n_layers}")
        self.graph = graph
        self.n_users, self.n_items = graph.n_users, graph.n_items
        self.embedding_dim, self.n_layers = embedding_dim, n_layers
        self.user_embedding = nn.Parameter(torch.empty(self.n_users, embedding_dim))
        self.item_embedding = nn.Parameter(torch.empty(self.n_items, embedding_dim))
        self.adjacency = graph.norm_adjacency()
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self.loss_parts: dict[str, float] = {}  # components of the last calculate_loss, for the curves
        self.reset_parameters(torch.Generator().manual_seed(0))

    # -- parameters and devices --------------------------------------------------------------
    def reset_parameters(self, generator: torch.Generator) -> None:
        """Xavier-uniform initialisation (as LightGCN's, SGL's and XSimGCL's reference code), drawn
        from ``generator`` so that the initial weights depend on the seed only."""
        with torch.no_grad():
            for p in (self.user_embedding, self.item_embedding):
                bound = float(np.sqrt(6.0 / (p.shape[0] + p.shape[1])))
                p.copy_(torch.rand(p.shape, generator=generator) * 2 * bound - bound)
        self._cache = None

    @property
    def device(self) -> torch.device:
        return self.user_embedding.device

    def _apply(self, fn, *args, **kwargs):  # moves the adjacency with .to()/.cuda()
        out = super()._apply(fn, *args, **kwargs)
        self.adjacency = self.adjacency.to(device=self.user_embedding.device, dtype=self.user_embedding.dtype)
        self._cache = None
        return out

    def train(self, mode: bool = True) -> "GraphRecommender":
        if mode or self.training:  # parameters may change (or have changed): recompute on demand
            self._cache = None
        return super().train(mode)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False):
        for key, p in (("user_embedding", self.user_embedding), ("item_embedding", self.item_embedding)):
            if key in state_dict and tuple(state_dict[key].shape) != tuple(p.shape):
                raise AgrecError(
                    f"{self.name}: weight '{key}' has shape {tuple(state_dict[key].shape)}, the model "
                    f"expects {tuple(p.shape)} (another dataset, split or embedding_dim?)"
                )
        self._cache = None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def on_graph(self, graph: InteractionGraph) -> "GraphRecommender":
        """The same layer-0 embeddings propagated over another graph of the same users and items.

        Returns a new model of this class (eval mode, same device; the weights are copied, so training
        either one does not change the other) whose adjacency is ``graph``'s, normalised the same way.
        This is the ``"propagate"`` test-time option: the training-split model scoring the test item
        over the train + validation graph without retraining.
        """
        if (graph.n_users, graph.n_items) != (self.n_users, self.n_items):
            raise AgrecError(
                f"{self.name}: the new graph has {graph.n_users} users x {graph.n_items} items, the "
                f"model {self.n_users} x {self.n_items}"
            )
        # every concrete model is built as Model(config, graph) (agrec/gnn/registry.py), unlike this base class
        other = cast(Any, type(self))(self.config, graph)
        other.load_state_dict(self.state_dict())
        return other.to(self.device).eval()

    # -- propagation -------------------------------------------------------------------------
    def ego_embeddings(self) -> torch.Tensor:
        """Layer 0: users then items, ``[n_users + n_items, d]``."""
        return torch.cat([self.user_embedding, self.item_embedding], dim=0)

    def propagate_layers(self, adjacency: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Layers 0..L of all node embeddings, each ``[n_users + n_items, d]`` (paper Eq. 2)."""
        adj = self.adjacency if adjacency is None else adjacency
        layers = [self.ego_embeddings()]
        for _ in range(self.n_layers):
            layers.append(propagate(adj, layers[-1]))
        return layers

    def split_nodes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[n_users + n_items, d] -> ([n_users, d], [n_items, d])``."""
        return x[: self.n_users], x[self.n_users :]

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final embeddings φ(u) ``[n_users, d]`` and ψ(v) ``[n_items, d]``."""
        raise NotImplementedError

    def final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The final embeddings without gradient; cached in eval mode."""
        if self._cache is not None:
            return self._cache
        with torch.no_grad():
            out = self.forward()
        out = (out[0].detach(), out[1].detach())
        if not self.training:
            self._cache = out
        return out

    def user_embeddings(self) -> torch.Tensor:
        """φ(u) of every user, ``[n_users, d]``."""
        return self.final_embeddings()[0]

    def item_embeddings(self) -> torch.Tensor:
        """ψ(v) of every item, ``[n_items, d]``."""
        return self.final_embeddings()[1]

    # -- training ------------------------------------------------------------------------------
    def start_epoch(self, generator: torch.Generator, rng: np.random.Generator) -> None:
        """Called before each training epoch with that epoch's random sources (SGL draws its
        augmented graphs here, XSimGCL its noise). No-op by default."""

    def calculate_loss(self, batch: BPRBatch) -> torch.Tensor:
        """Scalar training loss of one batch; sets :attr:`loss_parts`."""
        raise NotImplementedError

    # -- scoring -------------------------------------------------------------------------------
    def _user_tensor(self, user_ids: torch.Tensor | Sequence[int] | np.ndarray) -> torch.Tensor:
        ids = torch.as_tensor(user_ids, dtype=torch.long, device=self.device)
        if ids.ndim != 1:
            raise AgrecError(f"user_ids must be 1-d, got shape {tuple(ids.shape)}")
        if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= self.n_users):
            raise AgrecError(f"user_ids must lie in 0..{self.n_users - 1}, got {int(ids.min())}..{int(ids.max())}")
        return ids

    def full_sort_predict(self, user_ids: torch.Tensor | Sequence[int] | np.ndarray) -> torch.Tensor:
        """R(u, v) = ⟨φ(u), ψ(v)⟩ for every item: ``user_ids [B] -> scores [B, n_items]`` (one matmul)."""
        ids = self._user_tensor(user_ids)
        users, items = self.final_embeddings()
        return users[ids] @ items.T

    def top_n(
        self, user_ids: torch.Tensor | Sequence[int] | np.ndarray, n: int, exclude: Exclude = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``n`` best-scored items per user, best first.

        Args:
            user_ids: LongTensor ``[B]``.
            n: list length, ``1 <= n <= n_items``.
            exclude: items never to return: ``None``; ``"train"`` for each user's training items;
                or a list of ``B`` integer arrays (e.g. the history: training items for validation,
                training + validation items for test).

        Returns:
            ``(item_ids LongTensor [B, n], scores FloatTensor [B, n])``. When fewer than ``n`` items
            remain after exclusion, the tail is padded with item id -1 and score -inf.
        """
        if not 1 <= n <= self.n_items:
            raise AgrecError(f"top_n: n must be in 1..{self.n_items}, got {n}")
        ids = self._user_tensor(user_ids)
        scores = self.full_sort_predict(ids)
        self.mask_items(scores, ids, exclude)
        top_scores, top_items = torch.topk(scores, n, dim=1)
        top_items = top_items.masked_fill(torch.isneginf(top_scores), -1)
        return top_items, top_scores

    def mask_items(self, scores: torch.Tensor, user_ids: torch.Tensor, exclude: Exclude) -> torch.Tensor:
        """Set ``scores[b, v] = -inf`` for the excluded items of row b, in place (see :meth:`top_n`)."""
        if exclude is None:
            return scores
        if isinstance(exclude, str):
            if exclude != "train":
                raise AgrecError(f"exclude must be None, 'train' or a list of item arrays, got {exclude!r}")
            indptr = self.graph.user_indptr
            u = user_ids.cpu().numpy()
            lists: Iterable = (self.graph.items[indptr[x] : indptr[x + 1]] for x in u)
        else:
            if len(exclude) != len(user_ids):
                raise AgrecError(f"exclude has {len(exclude)} item lists for {len(user_ids)} users")
            lists = exclude
        arrays = [np.asarray(a.cpu() if isinstance(a, torch.Tensor) else a, dtype=np.int64).reshape(-1) for a in lists]
        lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
        if lengths.sum() == 0:
            return scores
        cols = np.concatenate(arrays)
        if cols.min() < 0 or cols.max() >= self.n_items:
            raise AgrecError(f"exclude: item ids must lie in 0..{self.n_items - 1}, got {cols.min()}..{cols.max()}")
        rows = np.repeat(np.arange(len(arrays)), lengths)
        scores[torch.from_numpy(rows).to(scores.device), torch.from_numpy(cols).to(scores.device)] = float("-inf")
        return scores

    def extra_repr(self) -> str:
        return (
            f"n_users={self.n_users}, n_items={self.n_items}, embedding_dim={self.embedding_dim}, "
            f"n_layers={self.n_layers}, n_edges={self.graph.n_edges}"
        )
