"""The decoder's contract: full_sort_predict, top_n with exclusion, embeddings, calculate_loss."""

import numpy as np
import pytest
import torch

from agrec.errors import AgrecError
from agrec.gnn.config import LightGCNConfig, SGLConfig, XSimGCLConfig
from agrec.gnn.registry import build_model
from agrec.gnn.sampler import BPRBatch

from gnn_helpers import graph_of, random_split

CONFIGS = {"lightgcn": LightGCNConfig(embedding_dim=8), "sgl": SGLConfig(embedding_dim=8),
           "xsimgcl": XSimGCLConfig(embedding_dim=8)}


@pytest.fixture(params=list(CONFIGS))
def model(request):
    return build_model(request.param, CONFIGS[request.param], graph_of(random_split()), seed=3).eval()


def test_full_sort_predict_is_the_dot_product_of_final_embeddings(model):
    users = torch.tensor([5, 0, 5])
    scores = model.full_sort_predict(users)
    assert scores.shape == (3, 30) and scores.dtype == torch.float32
    torch.testing.assert_close(scores, model.user_embeddings()[users] @ model.item_embeddings().T)
    assert model.user_embeddings().shape == (40, 8) and model.item_embeddings().shape == (30, 8)


def test_top_n_ranks_and_excludes(model):
    users = torch.tensor([0, 1, 2])
    items, scores = model.top_n(users, 5)
    full = model.full_sort_predict(users)
    ref_scores, ref_items = torch.topk(full, 5, dim=1)
    torch.testing.assert_close(scores, ref_scores)
    assert torch.equal(items, ref_items) and items.dtype == torch.long
    assert (scores[:, :-1] >= scores[:, 1:]).all()

    items, _ = model.top_n(users, 10, exclude="train")
    for row, u in zip(items.tolist(), users.tolist()):
        assert not set(row) & set(model.graph.user_items(u).tolist())
    banned = [np.array([int(ref_items[0, 0])]), np.array([], dtype=np.int64), ref_items[2, :3]]
    items, _ = model.top_n(users, 5, exclude=banned)
    assert int(ref_items[0, 0]) not in items[0].tolist()
    assert items[1].tolist() == ref_items[1].tolist()
    assert items[2].tolist()[:2] == ref_items[2, 3:5].tolist()


def test_top_n_pads_with_minus_one_when_everything_is_excluded(model):
    everything = [np.arange(28)]  # 2 items left for a list of 4
    items, scores = model.top_n(torch.tensor([0]), 4, exclude=everything)
    assert set(items[0, :2].tolist()) == {28, 29}
    assert items[0, 2:].tolist() == [-1, -1] and torch.isneginf(scores[0, 2:]).all()


def test_bad_arguments_are_named(model):
    with pytest.raises(AgrecError, match="n must be in 1..30"):
        model.top_n(torch.tensor([0]), 31)
    with pytest.raises(AgrecError, match="2 item lists for 1 users"):
        model.top_n(torch.tensor([0]), 3, exclude=[[1], [2]])
    with pytest.raises(AgrecError, match="user_ids must lie in 0..39"):
        model.full_sort_predict(torch.tensor([40]))
    with pytest.raises(AgrecError, match="item ids must lie"):
        model.top_n(torch.tensor([0]), 3, exclude=[[30]])
    with pytest.raises(AgrecError, match="exclude must be"):
        model.top_n(torch.tensor([0]), 3, exclude="valid")


def test_calculate_loss_is_a_differentiable_scalar(model):
    model.train()
    g = torch.Generator().manual_seed(0)
    model.start_epoch(g, np.random.default_rng(0))
    batch = BPRBatch(torch.tensor([0, 1, 2]), torch.tensor([int(model.graph.user_items(u)[0]) for u in range(3)]),
                     torch.tensor([29, 28, 27]))
    loss = model.calculate_loss(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert model.user_embedding.grad is not None and model.user_embedding.grad[0].abs().sum() > 0
    assert {"bpr", "reg"} <= set(model.loss_parts)


def test_eval_cache_is_dropped_when_weights_change(model):
    before = model.item_embeddings().clone()
    with torch.no_grad():
        state = {k: v * 2 for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert not torch.equal(model.item_embeddings(), before)
    with pytest.raises(AgrecError, match="has shape"):
        model.load_state_dict({"user_embedding": torch.zeros(3, 8), "item_embedding": torch.zeros(30, 8)})


def test_evaluation_masks_history_unless_told_not_to():
    from agrec.data.split import LeaveOneOutSplit
    from agrec.gnn.evaluate import evaluate_gnn, history_exclusion
    from agrec.gnn.graph import InteractionGraph
    from agrec.gnn.lightgcn import LightGCN

    # repeat consumption: user 0 watched item 3 in training and again as the validation item
    split = LeaveOneOutSplit(train=[np.array([3, 4]), np.array([5, 6])], valid=np.array([3, 7]),
                             test=np.array([8, 9]))
    assert [a.tolist() for a in history_exclusion(split, "test")] == [[3, 4, 3], [5, 6, 7]]
    model = LightGCN(LightGCNConfig(embedding_dim=1, n_layers=0), InteractionGraph.from_split(split, 12))
    with torch.no_grad():  # 0 layers: scores are plain dot products; item 3 scores highest, then 11, 10, ...
        model.user_embedding.fill_(1.0)
        model.item_embedding.copy_(torch.tensor([[0.0]] * 3 + [[100.0]] + [[float(i)] for i in range(4, 12)]))
    masked = evaluate_gnn(model, split, "valid", ks=(1, 10))
    kept = evaluate_gnn(model, split, "valid", ks=(1, 10), exclude_history=False)
    assert masked["HR@1"] == 0.0 and kept["HR@1"] == 0.5  # user 0's target is its own training item
