"""The target-aware top-n scorer protocol (agrec.scorers): GNN adapter, name resolution, row names."""

import sys
import types

import numpy as np
import pytest
import torch

from agrec.data.stage import RunData
from agrec.errors import AgrecError, ConfigError
from agrec.scorers import GNNScorer, TopNScorer, agrec_row, load_scorer, only_row


class FakeGNN:
    """full_sort_predict(u)[i] = offset + 10 u + i."""

    def __init__(self, offset: float, n_users: int = 5, n_items: int = 4):
        self.offset, self.n_items, self.calls = offset, n_items, []
        self.table = offset + 10 * torch.arange(n_users, dtype=torch.float32)[:, None] + torch.arange(n_items)

    def full_sort_predict(self, ids):
        self.calls.append(ids.tolist())
        return self.table[ids].double()   # the scorer hands back float32 whatever the model computes in


def test_gnn_scorer_uses_the_training_model_for_valid_and_builds_the_test_model_once_on_demand():
    valid, test = FakeGNN(0.0), FakeGNN(100.0)
    built = []
    scorer = GNNScorer("lightgcn", valid, lambda: built.append(1) or test, batch_size=2)
    assert isinstance(scorer, TopNScorer)
    out = scorer.score_users(np.array([4, 0, 2]), "valid")
    assert out.dtype == torch.float32 and out.shape == (3, 4)
    assert out.tolist() == [[40, 41, 42, 43], [0, 1, 2, 3], [20, 21, 22, 23]]
    assert valid.calls == [[4, 0], [2]] and built == []            # batches of 2; test model not built yet
    assert scorer.score_users(np.array([1]), "test").tolist() == [[110, 111, 112, 113]]
    scorer.score_users(np.array([3]), "test")
    assert built == [1] and scorer.model("test") is test and scorer.model("valid") is valid
    assert scorer.score_users(np.array([], dtype=np.int64), "valid").shape == (0, 4)
    with pytest.raises(AgrecError, match="target must be one of"):
        scorer.score_users(np.array([0]), "train")


def test_load_scorer_resolves_sasrec_lazily_through_the_baselines_stage(monkeypatch):
    calls = []

    class FakeSASRec:
        def score_users(self, users, target):
            return torch.zeros(len(users), 3)

    stage = types.ModuleType("agrec.baselines.stage")
    stage.train_sasrec = lambda data: calls.append(data) or FakeSASRec()
    monkeypatch.setitem(sys.modules, "agrec.baselines", types.ModuleType("agrec.baselines"))
    monkeypatch.setitem(sys.modules, "agrec.baselines.stage", stage)
    scorer = load_scorer("the run data", "sasrec")
    assert isinstance(scorer, TopNScorer) and calls == ["the run data"]
    with pytest.raises(ConfigError, match="unknown scorer 'bpr'"):
        load_scorer("the run data", "bpr")


def test_load_scorer_wraps_the_gnn_stage_models(monkeypatch):
    import agrec.gnn.stage as gnn_stage

    valid, test = FakeGNN(0.0), FakeGNN(100.0)
    asked = []
    monkeypatch.setattr(gnn_stage, "train_gnn", lambda data, name: asked.append(("train", name, data)) or valid)
    monkeypatch.setattr(gnn_stage, "gnn_for_target",
                        lambda data, name, target: asked.append((target, name, data)) or test)
    data = RunData(profile="p", run="r", ds="ds", split="split")   # loaded once by the caller, passed through
    scorer = load_scorer(data, "sgl")
    assert scorer.score_users(np.array([0]), "valid").tolist() == [[0, 1, 2, 3]]
    assert asked == [("train", "sgl", data)]
    assert scorer.score_users(np.array([0]), "test").tolist() == [[100, 101, 102, 103]]
    assert asked == [("train", "sgl", data), ("test", "sgl", data)]


def test_row_names_keep_the_gnn_rows_and_name_other_scorers():
    assert only_row("lightgcn") == "GNN only (lightgcn)" and agrec_row("lightgcn") == "AGRec (lightgcn)"
    assert only_row("sasrec") == "SASRec only" and agrec_row("sasrec") == "AGRec (sasrec)"
