import math

import numpy as np
import pytest
import torch

from agrec.errors import AgrecError
from agrec.gnn.graph import InteractionGraph
from agrec.gnn.losses import bpr_loss, info_nce, l2_reg
from agrec.gnn.sampler import bpr_batches, sample_negatives

from gnn_helpers import graph_of, random_split


def test_bpr_loss_hand_values():
    # -log sigmoid(1 - 0) = log(1 + e^-1); -log sigmoid(0 - 2) = log(1 + e^2)
    got = bpr_loss(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0]))
    assert got.item() == pytest.approx((math.log(1 + math.exp(-1)) + math.log(1 + math.exp(2))) / 2)


def test_l2_reg_hand_value():
    a = torch.tensor([[1.0, 2.0], [0.0, 1.0]])
    b = torch.tensor([[3.0, 0.0], [0.0, 0.0]])
    assert l2_reg(a, b).item() == pytest.approx((1 + 4 + 1 + 9) / (2 * 2))


def test_info_nce_hand_value():
    v1 = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    v2 = torch.tensor([[3.0, 0.0], [0.0, 1.0]])  # cosine: identity matrix
    tau = 0.5
    per_row = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + math.exp(0)))
    assert info_nce(v1, v2, tau).item() == pytest.approx(per_row)


def test_negatives_never_hit_training_items():
    g = graph_of(random_split())
    users = np.repeat(np.arange(g.n_users), 200)
    neg = sample_negatives(g, users, np.random.default_rng(1))
    assert not g.contains(users, neg).any()
    assert neg.min() >= 0 and neg.max() < g.n_items
    # uniform over the allowed items: every allowed item of user 0 shows up
    allowed = set(range(g.n_items)) - set(g.user_items(0).tolist())
    assert set(neg[users == 0].tolist()) == allowed


def test_user_with_every_item_cannot_be_sampled():
    g = InteractionGraph.from_pairs(np.array([0, 0, 1]), np.array([0, 1, 0]), n_users=2, n_items=2)
    with pytest.raises(AgrecError, match="user 0 interacted with all 2 items"):
        sample_negatives(g, np.array([1, 0]), np.random.default_rng(0))


def test_batches_cover_every_edge_once_and_are_seeded():
    g = graph_of(random_split())
    batches = list(bpr_batches(g, 32, np.random.default_rng(5)))
    users = torch.cat([b.users for b in batches]).numpy()
    pos = torch.cat([b.pos_items for b in batches]).numpy()
    assert sorted(zip(users.tolist(), pos.tolist())) == sorted(zip(g.users.tolist(), g.items.tolist()))
    assert all(len(b.users) == 32 for b in batches[:-1])
    again = list(bpr_batches(g, 32, np.random.default_rng(5)))
    assert all(torch.equal(a.neg_items, b.neg_items) for a, b in zip(batches, again))
