"""SGL (Wu et al., SIGIR 2021) with edge dropout: LightGCN plus a self-supervised contrast between
two randomly thinned copies of the training graph (AGRec paper, Tables 5 and 7).

Each epoch draws two sub-graphs that keep a random ``1 - drop_ratio`` share of the training edges
(SGL-ED); the embeddings of a batch's users (and, separately, of its positive items) under the two
views are pulled together by InfoNCE against the other users (items) of the batch. Scoring uses the
full training graph, exactly as LightGCN.
"""

from __future__ import annotations

import numpy as np
import torch

from agrec.gnn.base import GraphRecommender
from agrec.gnn.config import SGLConfig
from agrec.gnn.graph import InteractionGraph
from agrec.gnn.losses import bpr_loss, info_nce, l2_reg
from agrec.gnn.sampler import BPRBatch


class SGL(GraphRecommender):
    name = "sgl"

    def __init__(self, config: SGLConfig, graph: InteractionGraph):
        super().__init__(graph, config.embedding_dim, config.n_layers)
        self.config = config
        self.views: tuple[torch.Tensor, torch.Tensor] | None = None

    def _mean_layers(self, adjacency: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split_nodes(torch.stack(self.propagate_layers(adjacency)).mean(dim=0))

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """φ(u), ψ(v) on the full training graph: the mean of layers 0..L, as LightGCN."""
        return self._mean_layers()

    def start_epoch(self, generator: torch.Generator, rng: np.random.Generator) -> None:
        """Draw this epoch's two edge-dropout views."""
        keep = self.graph.n_edges - int(round(self.graph.n_edges * self.config.drop_ratio))
        views = []
        for _ in range(2):
            mask = np.zeros(self.graph.n_edges, dtype=bool)
            mask[rng.permutation(self.graph.n_edges)[:keep]] = True
            views.append(self.graph.norm_adjacency(keep=mask, device=self.device))
        self.views = (views[0], views[1])

    def calculate_loss(self, batch: BPRBatch) -> torch.Tensor:
        if self.views is None:
            raise RuntimeError("SGL.calculate_loss needs start_epoch() first (it draws the augmented views)")
        users, items = self.forward()
        u = users[batch.users]
        rec = bpr_loss((u * items[batch.pos_items]).sum(dim=1), (u * items[batch.neg_items]).sum(dim=1))
        reg = l2_reg(
            self.user_embedding[batch.users], self.item_embedding[batch.pos_items], self.item_embedding[batch.neg_items]
        )
        u1, i1 = self._mean_layers(self.views[0])
        u2, i2 = self._mean_layers(self.views[1])
        bu, bi = torch.unique(batch.users), torch.unique(batch.pos_items)
        ssl = info_nce(u1[bu], u2[bu], self.config.ssl_tau) + info_nce(i1[bi], i2[bi], self.config.ssl_tau)
        loss = rec + self.config.ssl_weight * ssl + self.config.reg_weight * reg
        self.loss_parts = {"bpr": float(rec.detach()), "reg": float(reg.detach()), "cl": float(ssl.detach())}
        return loss
