"""XSimGCL (Yu et al., TKDE 2023): LightGCN whose layers add small random noise, with a contrast
between the final embeddings and those of an intermediate layer (AGRec paper, Tables 5 and 7).

During training every layer output e gets e + ε · sign(e) ⊙ normalize(U(0, 1)) (the noise keeps
e's orthant); one perturbed pass gives both the BPR embeddings (the mean of layers 1..L — XSimGCL
leaves layer 0 out) and the contrastive views (layer L's mean vs layer l*). Scoring uses the
noise-free pass.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from agrec.gnn.base import GraphRecommender
from agrec.gnn.config import XSimGCLConfig
from agrec.gnn.graph import InteractionGraph, propagate
from agrec.gnn.losses import bpr_loss, info_nce, l2_reg
from agrec.gnn.sampler import BPRBatch


class XSimGCL(GraphRecommender):
    name = "xsimgcl"

    def __init__(self, config: XSimGCLConfig, graph: InteractionGraph):
        super().__init__(graph, config.embedding_dim, config.n_layers)
        self.config = config
        self._noise: torch.Generator | None = None

    def _encode(self, perturbed: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """All nodes: (mean of layers 1..L, layer l*), each ``[n_users + n_items, d]``."""
        x = self.ego_embeddings()
        layers = []
        for _ in range(self.n_layers):
            x = propagate(self.adjacency, x)
            if perturbed:
                noise = torch.rand(x.shape, generator=self._noise, device=x.device)
                x = x + torch.sign(x) * F.normalize(noise, dim=-1) * self.config.eps
            layers.append(x)
        return torch.stack(layers).mean(dim=0), layers[self.config.cl_layer - 1]

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """φ(u), ψ(v) without noise: the mean of layers 1..L."""
        return self.split_nodes(self._encode(perturbed=False)[0])

    def start_epoch(self, generator: torch.Generator, rng: np.random.Generator) -> None:
        self._noise = generator

    def calculate_loss(self, batch: BPRBatch) -> torch.Tensor:
        if self._noise is None:
            raise RuntimeError("XSimGCL.calculate_loss needs start_epoch() first (it sets the noise generator)")
        final, layer = self._encode(perturbed=True)
        users, items = self.split_nodes(final)
        users_cl, items_cl = self.split_nodes(layer)
        u = users[batch.users]
        rec = bpr_loss((u * items[batch.pos_items]).sum(dim=1), (u * items[batch.neg_items]).sum(dim=1))
        reg = l2_reg(
            self.user_embedding[batch.users], self.item_embedding[batch.pos_items], self.item_embedding[batch.neg_items]
        )
        bu, bi = torch.unique(batch.users), torch.unique(batch.pos_items)
        cl = info_nce(users[bu], users_cl[bu], self.config.cl_tau) + info_nce(
            items[bi], items_cl[bi], self.config.cl_tau
        )
        loss = rec + self.config.cl_weight * cl + self.config.reg_weight * reg
        self.loss_parts = {"bpr": float(rec.detach()), "reg": float(reg.detach()), "cl": float(cl.detach())}
        return loss
