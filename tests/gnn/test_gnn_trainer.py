"""Training: no leakage of the test item, determinism, resuming, early stopping on validation."""

import numpy as np
import pytest
import torch

from agrec.data.split import LeaveOneOutSplit
from agrec.gnn.config import GNNTrainConfig, LightGCNConfig, SGLConfig, XSimGCLConfig
from agrec.gnn.graph import InteractionGraph
from agrec.gnn.registry import build_model
from agrec.gnn.trainer import fit

from gnn_helpers import random_split

CONFIGS = {"lightgcn": LightGCNConfig(embedding_dim=16), "sgl": SGLConfig(embedding_dim=16),
           "xsimgcl": XSimGCLConfig(embedding_dim=16)}
TRAIN = GNNTrainConfig(epochs=6, batch_size=64, learning_rate=0.01, eval_every=2, patience=10, progress=False)


def train(name: str, split: LeaveOneOutSplit, seed: int = 11, cfg: GNNTrainConfig = TRAIN, **kw):
    model = build_model(name, CONFIGS[name], InteractionGraph.from_split(split, 30), seed=seed)
    result = fit(model, split, cfg, seed=seed, **kw)
    return model, result


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_test_item_never_influences_training(name):
    split = random_split()
    base, res = train(name, split)
    changed = LeaveOneOutSplit(train=split.train, valid=split.valid, test=split.test.copy())
    history = set(split.train[0].tolist()) | {int(split.valid[0])}
    # give user 0 (and every other user) a different test item
    for u in range(split.n_users):
        hist = set(split.train[u].tolist()) | {int(split.valid[u])}
        changed.test[u] = next(i for i in range(30) if i not in hist and i != split.test[u])
    assert changed.test[0] != split.test[0] and int(changed.test[0]) not in history
    other, res2 = train(name, changed)
    for k, v in weights(base).items():
        assert torch.equal(v, other.state_dict()[k]), f"{name}: {k} changed with the test items"
    assert res.best_epoch == res2.best_epoch
    # the comparison is sensitive: one changed training item changes the weights
    tweaked = LeaveOneOutSplit(train=[t.copy() for t in split.train], valid=split.valid, test=split.test)
    tweaked.train[0][0] = next(i for i in range(30) if i not in history | {int(split.test[0])})
    third, _ = train(name, tweaked)
    assert not torch.equal(third.state_dict()["user_embedding"], base.state_dict()["user_embedding"])


def test_same_seed_same_weights_other_seed_other_weights():
    split = random_split()
    a, _ = train("xsimgcl", split)
    b, _ = train("xsimgcl", split)
    c, _ = train("xsimgcl", split, seed=12)
    assert torch.equal(a.state_dict()["item_embedding"], b.state_dict()["item_embedding"])
    assert not torch.equal(a.state_dict()["item_embedding"], c.state_dict()["item_embedding"])


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("name", ["lightgcn", "sgl"])
def test_resumed_run_ends_bit_identical(tmp_path, name):
    split = random_split()
    straight, res = train(name, split)
    ckpt = tmp_path / "checkpoint.pt"

    def stop_at_4(epoch, _metrics):
        if epoch == 4:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(name, split, checkpoint=ckpt, key="k", on_evaluate=stop_at_4)
    assert ckpt.is_file()
    resumed, res2 = train(name, split, checkpoint=ckpt, key="k")
    assert res2.resumed_from == 4 and res2.epochs_run == 6
    for k, v in straight.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k])
    assert res2.best_epoch == res.best_epoch
    assert res2.curves["loss"].tolist() == res.curves["loss"].tolist()
    # a checkpoint of another configuration is ignored, not resumed
    _, res3 = train(name, split, checkpoint=ckpt, key="other")
    assert res3.resumed_from is None


def test_early_stopping_keeps_the_best_validation_weights():
    split = random_split()
    seen = {}

    def record(epoch, metrics):
        seen[epoch] = metrics["NDCG@10"]

    cfg = GNNTrainConfig(epochs=40, batch_size=64, learning_rate=0.05, eval_every=1, patience=2, progress=False)
    model, res = train("lightgcn", split, cfg=cfg, on_evaluate=record)
    assert res.stopped_early and res.epochs_run < 40
    best = max(seen, key=lambda e: (seen[e], -e))
    assert res.best_epoch == best and res.best_valid["NDCG@10"] == seen[best]
    # the last evaluations did not improve: patience counts them
    assert all(seen[e] <= seen[best] for e in seen if e > best) and res.epochs_run - best == 2
    # the model holds the best weights: evaluating again reproduces the best score
    from agrec.gnn.evaluate import evaluate_gnn
    assert evaluate_gnn(model, split, "valid")["NDCG@10"] == pytest.approx(seen[best])
    assert not model.training
    curves = res.curves
    assert list(curves["epoch"]) == list(range(1, res.epochs_run + 1))
    assert np.isfinite(curves["valid_NDCG@10"]).all() and (curves["seconds"] > 0).all()
