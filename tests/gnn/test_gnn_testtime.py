"""The fair test-time GNN (gnn.train.test_graph): the train + validation graph, "propagate" against values
worked out by hand, "refit" for exactly the validation-chosen epoch count, and the stage's records."""

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from agrec.config import load_profile
from agrec.data.split import LeaveOneOutSplit
from agrec.errors import AgrecError, ConfigError
from agrec.gnn.config import GNNTrainConfig, LightGCNConfig, SGLConfig, XSimGCLConfig
from agrec.gnn.graph import InteractionGraph
from agrec.gnn.lightgcn import LightGCN
from agrec.gnn.registry import build_model
from agrec.gnn.stage import gnn_for_target, read_metrics, run_gnn_stage, train_gnn
from agrec.gnn.trainer import fit, fit_epochs
from agrec.run.session import open_session

from conftest import CI_PROFILE
from gnn_helpers import graph_of, random_split
from test_gnn_graph import E0, MEAN_0_2, MEAN_1_2, tiny_graph


def tiny_split() -> LeaveOneOutSplit:
    """u0: 0, 1 (valid), 2 (test); u1: 2, 1 (valid), 0 (test). Its train + validation graph is
    test_gnn_graph.tiny_graph (u0-i0, u0-i1, u1-i1, u1-i2); the training graph is u0-i0, u1-i2."""
    return LeaveOneOutSplit(train=[np.array([0]), np.array([2])], valid=np.array([1, 1]), test=np.array([2, 0]))


def with_embeddings(model, values):
    with torch.no_grad():
        model.user_embedding.copy_(torch.tensor(values[:2]).reshape(2, 1))
        model.item_embedding.copy_(torch.tensor(values[2:]).reshape(3, 1))
    return model.eval()


def test_test_graph_adds_each_users_validation_item_and_never_the_test_item():
    split = random_split(n_users=40, n_items=30, seed=3)
    train, test = InteractionGraph.from_split(split, 30, "valid"), InteractionGraph.from_split(split, 30, "test")
    users, items = split.train_pairs()
    assert train.contains(users, items).all() and test.contains(users, items).all()
    u = np.arange(split.n_users)
    assert test.contains(u, split.valid).all() and not train.contains(u, split.valid).any()
    assert not test.contains(u, split.test).any()                  # random_split draws distinct items per user
    assert test.n_edges == train.n_edges + split.n_users
    tg = InteractionGraph.from_split(tiny_split(), 3, "test")
    assert (tg.users.tolist(), tg.items.tolist()) == (tiny_graph().users.tolist(), tiny_graph().items.tolist())
    with pytest.raises(AgrecError, match="graph target"):
        InteractionGraph.from_split(split, 30, "train")


def test_propagate_equals_the_hand_computed_train_plus_valid_propagation():
    split = tiny_split()
    model = with_embeddings(LightGCN(LightGCNConfig(embedding_dim=1, n_layers=2), graph_of(split, 3)), E0)
    # training graph u0-i0, u1-i2: every degree is 1 (i1 isolated), so layer 1 swaps the ends of each edge
    # and layer 2 swaps them back: mean of layers 0..2 = (e + e' + e) / 3
    train_final = [(1 + 3 + 1) / 3, (2 + 5 + 2) / 3, (3 + 1 + 3) / 3, 4 / 3, (5 + 2 + 5) / 3]
    valid_scores = model.full_sort_predict([0, 1]).clone()
    expected_valid = torch.tensor(train_final[:2]).reshape(2, 1) * torch.tensor(train_final[2:]).reshape(1, 3)
    torch.testing.assert_close(valid_scores, expected_valid)

    test_model = model.on_graph(InteractionGraph.from_split(split, 3, "test"))
    torch.testing.assert_close(test_model.user_embeddings().reshape(-1), torch.tensor(MEAN_0_2[:2]))
    torch.testing.assert_close(test_model.item_embeddings().reshape(-1), torch.tensor(MEAN_0_2[2:]))
    assert not test_model.training and type(test_model) is LightGCN
    # the training-split model (the validation scorer) is untouched, and the two share no weights
    torch.testing.assert_close(model.full_sort_predict([0, 1]), valid_scores, rtol=0, atol=0)
    with torch.no_grad():
        test_model.user_embedding.add_(1.0)
    torch.testing.assert_close(model.full_sort_predict([0, 1]), valid_scores, rtol=0, atol=0)


@pytest.mark.parametrize("name, config, expected", [
    ("sgl", SGLConfig(embedding_dim=1, n_layers=2), MEAN_0_2),          # scores as LightGCN: layers 0..L
    ("xsimgcl", XSimGCLConfig(embedding_dim=1, n_layers=2), MEAN_1_2),  # layers 1..L, no noise at scoring
])
def test_propagate_keeps_each_models_scoring_pass(name, config, expected):
    model = with_embeddings(build_model(name, config, graph_of(tiny_split(), 3), seed=0), E0)
    test_model = model.on_graph(InteractionGraph.from_split(tiny_split(), 3, "test"))
    assert test_model.name == name
    final = torch.cat(test_model.final_embeddings()).reshape(-1)
    torch.testing.assert_close(final, torch.tensor(expected))


def test_on_graph_refuses_another_node_set():
    model = LightGCN(LightGCNConfig(embedding_dim=2), graph_of(tiny_split(), 3))
    with pytest.raises(AgrecError, match="3 users x 3 items"):
        model.on_graph(InteractionGraph.from_pairs(np.array([0]), np.array([0]), n_users=3, n_items=3))


@pytest.mark.parametrize("name", ["lightgcn", "sgl", "xsimgcl"])
def test_fit_epochs_trains_exactly_the_best_epoch_and_reproduces_fit(name):
    """Same seed, same graph: fit_epochs(best_epoch) ends bit-identical to fit's selected weights, so the refit
    differs from the selected model only by the validation edges it trains on."""
    split = random_split(n_users=40, n_items=30, seed=1)
    configs = {"lightgcn": LightGCNConfig(embedding_dim=8), "sgl": SGLConfig(embedding_dim=8),
               "xsimgcl": XSimGCLConfig(embedding_dim=8)}
    cfg = GNNTrainConfig(epochs=6, batch_size=64, learning_rate=0.05, eval_every=1, patience=6, progress=False)
    selected = build_model(name, configs[name], graph_of(split), seed=7)
    result = fit(selected, split, cfg, seed=7)
    refit = build_model(name, configs[name], graph_of(split), seed=7)
    out = fit_epochs(refit, cfg, seed=7, epochs=result.best_epoch)
    assert out.epochs_run == result.best_epoch == len(out.curves) and not refit.training
    for key, value in selected.state_dict().items():
        torch.testing.assert_close(refit.state_dict()[key], value, rtol=0, atol=0)
    with pytest.raises(AgrecError, match="epochs must be > 0"):
        fit_epochs(refit, cfg, seed=7, epochs=0)


def test_fit_epochs_resumes_bit_identically(tmp_path):
    split = random_split(seed=2)
    cfg = GNNTrainConfig(epochs=4, batch_size=64, learning_rate=0.05, eval_every=2, progress=False)
    whole = build_model("lightgcn", LightGCNConfig(embedding_dim=8), graph_of(split), seed=3)
    fit_epochs(whole, cfg, seed=3, epochs=4)
    part = build_model("lightgcn", LightGCNConfig(embedding_dim=8), graph_of(split), seed=3)
    fit_epochs(part, cfg, seed=3, epochs=2, checkpoint=tmp_path / "ck.pt", key="k")  # "interrupted" after 2
    resumed = build_model("lightgcn", LightGCNConfig(embedding_dim=8), graph_of(split), seed=3)
    out = fit_epochs(resumed, cfg, seed=3, epochs=4, checkpoint=tmp_path / "ck.pt", key="k")
    assert out.resumed_from == 2 and out.epochs_run == 4
    torch.testing.assert_close(resumed.item_embedding, whole.item_embedding, rtol=0, atol=0)


def test_test_graph_is_validated_and_named():
    assert load_profile(CI_PROFILE).gnn.train.test_graph == "propagate"
    with pytest.raises(ConfigError, match="gnn.train.test_graph must be one of"):
        load_profile(CI_PROFILE, {"gnn.train.test_graph": "valid"})


# -- the stage ----------------------------------------------------------------------------------------------
TINY = {"gnn.models": ["lightgcn"], "gnn.train.epochs": 3, "gnn.train.eval_every": 1, "gnn.train.patience": 3,
        "gnn.train.batch_size": 16384,
        "gnn.train.progress": False, "gnn.lightgcn.embedding_dim": 8}


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return tmp_path_factory.mktemp("gnn_testtime")


def session(root, **extra):
    return open_session(CI_PROFILE, run_dir=root / "run", report_dir=root / "rep", overrides={**TINY, **extra})


def metrics_from_embeddings(model, split, target, ks=(5, 10, 20)):
    """HR@K / NDCG@K from R(u, v) = <phi(u), psi(v)> over all items, each user's history excluded, written out
    here: the target's rank is 1 + the number of other allowed items scored higher (ties to the lower item id,
    as the stage's stable ranking breaks them)."""
    with torch.no_grad():
        users, items = model.final_embeddings()
        scores = (users @ items.T).double().numpy()
    hits = {k: 0.0 for k in ks}
    gains = {k: 0.0 for k in ks}
    targets = split.targets(target)
    for u in range(len(targets)):
        s = scores[u].copy()
        s[split.history(u, target)] = -np.inf
        t = int(targets[u])
        rank = 1 + int((s > s[t]).sum()) + int((s[:t] == s[t]).sum())
        for k in ks:
            if rank <= k:
                hits[k] += 1
                gains[k] += 1 / math.log2(rank + 1)
    n = len(targets)
    return {m: v for k in ks for m, v in ((f"HR@{k}", hits[k] / n), (f"NDCG@{k}", gains[k] / n))}


def test_stage_scores_test_with_the_option_and_switching_reuses_the_weights(shared):
    from agrec.data.stage import prepare_data

    s = session(shared, **{"gnn.train.test_graph": "propagate"})
    run_gnn_stage(s)
    folder = s.run.root / "gnn" / "lightgcn"
    stamp = (folder / "weights.safetensors").stat().st_mtime_ns
    ds, split = prepare_data(s)
    net = train_gnn(s, "lightgcn")
    rec = read_metrics(s, "lightgcn")
    test_graph = InteractionGraph.from_split(split, ds.n_items, "test")
    assert rec["test_graph"] == "propagate" and set(rec["test_by_graph"]) == {"train", "propagate"}
    assert rec["test"] == rec["test_by_graph"]["propagate"]
    # expected metrics computed here from the embeddings, not by evaluate_gnn (the code the stage calls)
    assert rec["test"] == pytest.approx(metrics_from_embeddings(net.on_graph(test_graph), split, "test"), abs=1e-12)
    assert rec["test_by_graph"]["train"] == pytest.approx(metrics_from_embeddings(net, split, "test"), abs=1e-12)
    assert rec["valid"] == pytest.approx(metrics_from_embeddings(net, split, "valid"), abs=1e-12)  # train-only model
    assert gnn_for_target(s, "lightgcn", "test").graph.n_edges == test_graph.n_edges

    # switching to "train": no retraining, the test row is the training-split model's
    t = session(shared, **{"gnn.train.test_graph": "train"})
    assert read_metrics(t, "lightgcn") is None                  # the record holds another option's test row
    run_gnn_stage(t)
    assert (folder / "weights.safetensors").stat().st_mtime_ns == stamp
    assert read_metrics(t, "lightgcn")["test"] == rec["test_by_graph"]["train"]
    assert gnn_for_target(t, "lightgcn", "test").graph.n_edges == net.graph.n_edges


def split_of(s):
    from agrec.data.stage import prepare_data

    return prepare_data(s)[1]


def test_stage_refit_trains_best_epoch_epochs_on_train_plus_valid(shared):
    s = session(shared, **{"gnn.train.test_graph": "refit"})
    run_gnn_stage(s)
    folder = s.run.root / "gnn" / "lightgcn"
    rec = read_metrics(s, "lightgcn")
    assert rec["refit"]["epochs"] == rec["best_epoch"] and rec["test"] == rec["test_by_graph"]["refit"]
    assert rec["refit"]["n_edges"] == rec["test_graph_edges"]
    assert {p.name for p in folder.iterdir()} == {"weights.safetensors", "curves.csv", "metrics.json",
                                                  "refit.safetensors"}
    refit = gnn_for_target(s, "lightgcn", "test")
    # a fresh refit from the same seed for best_epoch epochs gives the cached weights bit for bit
    again = build_model("lightgcn", s.profile.gnn.lightgcn, refit.graph, s.profile.seed)
    fit_epochs(again, s.profile.gnn.train, s.profile.seed, rec["best_epoch"])
    cached = load_file(folder / "refit.safetensors")
    for key, value in again.state_dict().items():
        torch.testing.assert_close(cached[key], value, rtol=0, atol=0)
        torch.testing.assert_close(refit.state_dict()[key], value, rtol=0, atol=0)
    whole = json.loads((folder / "metrics.json").read_text())   # written whole, and it is what read_metrics returns
    assert whole == rec and whole["test"] == pytest.approx(metrics_from_embeddings(refit, split_of(s), "test"),
                                                           abs=1e-12)
