"""LightGCN (He et al., SIGIR 2020), the auxiliary GNN of AGRec (paper §3.2, Eq. 2).

Embeddings are propagated over the normalised training graph without weights or non-linearities;
the final embedding is the mean of layers 0..L; R(u, v) = ⟨φ(u), ψ(v)⟩; trained with BPR and an L2
penalty on the layer-0 embeddings of the batch.
"""

from __future__ import annotations

import torch

from agrec.gnn.base import GraphRecommender
from agrec.gnn.config import LightGCNConfig
from agrec.gnn.graph import InteractionGraph
from agrec.gnn.losses import bpr_loss, l2_reg
from agrec.gnn.sampler import BPRBatch


class LightGCN(GraphRecommender):
    name = "lightgcn"

    def __init__(self, config: LightGCNConfig, graph: InteractionGraph):
        super().__init__(graph, config.embedding_dim, config.n_layers)
        self.config = config

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """φ(u) ``[n_users, d]``, ψ(v) ``[n_items, d]``: the mean of layers 0..L."""
        layers = self.propagate_layers()
        return self.split_nodes(torch.stack(layers).mean(dim=0))

    def calculate_loss(self, batch: BPRBatch) -> torch.Tensor:
        users, items = self.forward()
        u = users[batch.users]
        pos = (u * items[batch.pos_items]).sum(dim=1)
        neg = (u * items[batch.neg_items]).sum(dim=1)
        rec = bpr_loss(pos, neg)
        reg = l2_reg(
            self.user_embedding[batch.users], self.item_embedding[batch.pos_items], self.item_embedding[batch.neg_items]
        )
        loss = rec + self.config.reg_weight * reg
        self.loss_parts = {"bpr": float(rec.detach()), "reg": float(reg.detach())}
        return loss
