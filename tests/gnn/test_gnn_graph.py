"""Propagation on a hand-made graph equals values computed by hand (paper Eq. 2, mean of layers)."""

import math

import numpy as np
import pytest
import torch

from agrec.errors import AgrecError
from agrec.gnn.config import LightGCNConfig, XSimGCLConfig
from agrec.gnn.graph import InteractionGraph, propagate
from agrec.gnn.lightgcn import LightGCN
from agrec.gnn.xsimgcl import XSimGCL

R2 = math.sqrt(2.0)


def tiny_graph() -> InteractionGraph:
    # u0 - i0, u0 - i1, u1 - i1, u1 - i2 (and a duplicate u0 - i1 that must count once)
    return InteractionGraph.from_pairs(np.array([0, 0, 1, 1, 0]), np.array([0, 1, 1, 2, 1]), n_users=2, n_items=3)


# Layer-0 values (users u0, u1, then items i0, i1, i2) and the layers worked out by hand:
# degrees u0 = u1 = 2, i0 = i2 = 1, i1 = 2; edge weights 1/sqrt(d_u d_v): u0-i0 = u1-i2 = 1/√2, u0-i1 = u1-i1 = 1/2.
E0 = [1.0, 2.0, 3.0, 4.0, 5.0]
E1 = [3 / R2 + 4 / 2, 4 / 2 + 5 / R2,          # u0 = i0/√2 + i1/2 ; u1 = i1/2 + i2/√2
      1 / R2, 1 / 2 + 2 / 2, 2 / R2]            # i0 = u0/√2 ; i1 = u0/2 + u1/2 ; i2 = u1/√2
E2 = [(1 / R2) / R2 + 1.5 / 2, 1.5 / 2 + (2 / R2) / R2,
      (3 / R2 + 2) / R2, (3 / R2 + 2) / 2 + (2 + 5 / R2) / 2, (2 + 5 / R2) / R2]
MEAN_0_2 = [(a + b + c) / 3 for a, b, c in zip(E0, E1, E2)]
MEAN_1_2 = [(b + c) / 2 for b, c in zip(E1, E2)]


def test_hand_values_are_what_the_comments_say():
    # the closed forms of the hand computation, as a cross-check of the lists above
    assert E2[0] == pytest.approx(1.25) and E2[1] == pytest.approx(1.75)
    assert E2[2] == pytest.approx(1.5 + R2) and E2[3] == pytest.approx(2 + 2 * R2) and E2[4] == pytest.approx(2.5 + R2)


def test_graph_dedupes_and_normalises_symmetrically():
    g = tiny_graph()
    assert g.n_edges == 4 and g.users.tolist() == [0, 0, 1, 1] and g.items.tolist() == [0, 1, 1, 2]
    dense = g.norm_adjacency().to_dense()
    expected = torch.zeros(5, 5)
    for u, i, w in [(0, 0, 1 / R2), (0, 1, 0.5), (1, 1, 0.5), (1, 2, 1 / R2)]:
        expected[u, 2 + i] = expected[2 + i, u] = w
    torch.testing.assert_close(dense, expected)
    assert g.contains(np.array([0, 0, 1]), np.array([1, 2, 0])).tolist() == [True, False, False]
    assert g.user_items(1).tolist() == [1, 2]


def test_edge_dropout_view_uses_the_degrees_of_the_kept_edges():
    g = tiny_graph()
    dense = g.norm_adjacency(keep=np.array([True, False, True, True])).to_dense()  # drop u0 - i1
    # now deg u0 = 1, i0 = 1, u1 = 2, i1 = 1, i2 = 1
    assert dense[0, 2].item() == pytest.approx(1.0)
    assert dense[1, 3].item() == pytest.approx(1 / R2) and dense[1, 4].item() == pytest.approx(1 / R2)
    assert dense[0, 3].item() == 0.0


@pytest.mark.parametrize("width", [1, 130])
def test_lightgcn_propagation_equals_hand_computation(width):
    g = tiny_graph()
    model = LightGCN(LightGCNConfig(embedding_dim=width, n_layers=2), g)
    scale = torch.arange(1, width + 1, dtype=torch.float32)  # column j holds (j + 1) x the hand values
    with torch.no_grad():
        model.user_embedding.copy_(torch.tensor(E0[:2])[:, None] * scale)
        model.item_embedding.copy_(torch.tensor(E0[2:])[:, None] * scale)
    layers = model.propagate_layers()
    for got, want in zip(layers, [E0, E1, E2]):
        torch.testing.assert_close(got, torch.tensor(want)[:, None] * scale)
    model.eval()
    users, items = model.user_embeddings(), model.item_embeddings()
    torch.testing.assert_close(torch.cat([users, items]), torch.tensor(MEAN_0_2)[:, None] * scale)
    # R(u, v) = <phi(u), psi(v)>
    scores = model.full_sort_predict(torch.tensor([1, 0]))
    torch.testing.assert_close(scores, users[[1, 0]] @ items.T)
    assert scores[0, 2].item() == pytest.approx(MEAN_0_2[1] * MEAN_0_2[4] * float((scale ** 2).sum()), rel=1e-5)


def test_xsimgcl_scores_with_the_noise_free_mean_of_layers_1_to_L():
    g = tiny_graph()
    model = XSimGCL(XSimGCLConfig(embedding_dim=1, n_layers=2), g)
    with torch.no_grad():
        model.user_embedding.copy_(torch.tensor(E0[:2])[:, None])
        model.item_embedding.copy_(torch.tensor(E0[2:])[:, None])
    model.eval()
    got = torch.cat([model.user_embeddings(), model.item_embeddings()])[:, 0]
    torch.testing.assert_close(got, torch.tensor(MEAN_1_2))


def test_propagate_gradient_is_the_transpose_product():
    g = tiny_graph()
    adj = g.norm_adjacency()
    x = torch.randn(5, 3, dtype=torch.float32, requires_grad=True)
    w = torch.randn(5, 3)
    (propagate(adj, x) * w).sum().backward()
    torch.testing.assert_close(x.grad, adj.to_dense().T @ w)


def test_graph_rejects_out_of_range_ids():
    with pytest.raises(AgrecError, match="item index"):
        InteractionGraph.from_pairs(np.array([0]), np.array([3]), n_users=1, n_items=3)
