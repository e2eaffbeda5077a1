"""The notebook's flow (agrec.analysis.stage) on synthetic stage outputs: a tiny random Llama, a fake GNN, a
hand-made decode report. ``gather_inputs`` itself needs the real stages and runs in the notebook."""

import types

import numpy as np
import pandas as pd
import torch

from agrec.analysis import stage as A
from agrec.analysis.casestudy import token_labels
from agrec.analysis.config import AnalysisConfig
from agrec.analysis.explorer import BeamExplorer
from agrec.data.split import LeaveOneOutSplit
from agrec.decode.config import DecodeConfig
from agrec.semantic_ids.codes import CodeTable
from tests.decode.tiny_lm import N_SPECIAL, make_tiny

SIZES = (8, 6, 6)


class FakeGNN:
    def __init__(self, n_users, n_items, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.u, self.i = torch.randn(n_users, 4, generator=g), torch.randn(n_items, 4, generator=g)

    def item_embeddings(self):
        return self.i

    def full_sort_predict(self, users):
        return self.u[torch.as_tensor(users)] @ self.i.T


def make_inputs(n_users=6):
    t = make_tiny(seed=1, n_users=n_users)
    n_items = t.trie.n_items
    offsets = N_SPECIAL + np.concatenate([[0], np.cumsum(SIZES)[:-1]])
    codes = CodeTable(t.tokens - offsets, SIZES)
    rng = np.random.default_rng(0)
    train = [rng.choice(n_items, size=int(rng.integers(2, 6)), replace=False) for _ in range(n_users)]
    split = LeaveOneOutSplit(train=train, valid=rng.integers(0, n_items, n_users),
                             test=rng.integers(0, n_items, n_users))
    users = np.arange(n_users)
    targets = split.test
    lm_items = rng.integers(0, n_items, (n_users, 20))
    lm_items[0, 3] = targets[0]                        # user 0: both hit; user 1: AGRec only
    gnn_items = rng.integers(0, n_items, (n_users, 20))
    gnn_items[0, 0] = targets[0]
    agrec_items = lm_items.copy()
    agrec_items[1, 0] = targets[1]
    rk = lambda items: {"users": users, "targets": targets, "items": items, "scores": np.zeros(items.shape)}  # noqa
    bundle = types.SimpleNamespace(model=t.model, codes=codes, item_token_ids=torch.as_tensor(t.tokens),
                                   pad_token_id=0, prompt_ids=lambda h: [2] + t.tokens[np.asarray(h)].reshape(-1).tolist())
    ds = types.SimpleNamespace(n_items=n_items, item_info=pd.DataFrame({"genres": [["G%d" % (i % 3)]
                                                                                   for i in range(n_items)]}))
    sem = types.SimpleNamespace(embeddings=rng.normal(size=(n_items, 16)).astype(np.float32), record={})
    return A.AnalysisInputs(
        cfg=AnalysisConfig(tsne_items=40, tsne_perplexity=5.0, explorer_users=3, activity_buckets=2),
        ds=ds, split=split, sem=sem, bundle=bundle, gnn=FakeGNN(n_users, n_items), gnn_name="lightgcn",
        decode=None, trie=t.trie, titles=[f"item {i}" for i in range(n_items)], labels=token_labels(t.tokens),
        rankings={"lm": rk(lm_items), "gnn": rk(gnn_items), "agrec": rk(agrec_items)},
        agrec_settings=DecodeConfig(alpha=0.4, top_n=5, beam_size=8))


def test_notebook_flow_on_synthetic_outputs(tmp_path):
    inp = make_inputs()
    comp = A.complementarity_analysis(inp)
    assert comp["overall"]["both"] >= 1 and sum(comp["overall"].values()) == 6
    assert comp["by_activity"]["users"].sum() == 6 and comp["by_popularity"]["users"].sum() == 6
    counts = A.homogeneity_counts(inp)
    assert list(counts) == ["α=0 (w/o Graph)", "α=0.4 (AGRec)"] and counts["α=0 (w/o Graph)"].shape == (6, 3)
    reps = A.item_representations(inp, tmp_path)            # no RQ-VAE checkpoint: the text embeddings
    assert list(reps) == ["text embedding", "GNN (lightgcn)", "LM code tokens"]
    ts = A.tsne_analysis(inp, reps, seed=0)
    assert all(c.shape == (40, 2) for c in ts["coords"].values()) and len(ts["hover"]) == 40
    case = A.case_study(inp, n_beams=4)
    assert case["row"] == 1 and case["hit_agrec"] and not case["hit_lm"]   # AGRec hits, α = 0 misses
    assert len(case["beams"]) == 4 and set(case["trace"]["level"]) == {1, 2, 3}
    assert not set(case["beams"]["item"]) & set(inp.split.train[1].tolist())
    data = A.explorer_data(inp, first=case["row"])
    assert data.users.tolist() == [0, 1, 2] and data.decode.alpha == 0.4
    v = BeamExplorer(data).view(1, 0.4, 5, "prob", 8)
    assert v["beams"]["item"].tolist() == case["beams"]["item"].tolist() + v["beams"]["item"].tolist()[4:]
    nums = A.analysis_results(comp, pd.DataFrame([{"setting": "x", "users": 1, "mean L1": 2.0}]), case, [])
    assert nums["homogeneity"] == {"x": {"mean L1": 2.0}} and nums["complementarity"] == comp["overall"]
    assert nums["case_study"] == {"user": 1, "target": case["target_title"], "hit_lm": False, "hit_agrec": True}


def test_codes_quantised_from_the_interactions_name_their_embedding_collaborative(tmp_path):
    inp = make_inputs()
    inp.sem.record = {"embedding": {"encoder": "collaborative", "dim": 16}}
    reps = A.item_representations(inp, tmp_path)            # no RQ-VAE checkpoint: the quantiser's input
    assert list(reps) == ["collaborative embedding", "GNN (lightgcn)", "LM code tokens"]
    np.testing.assert_array_equal(reps["collaborative embedding"], inp.sem.embeddings)


def test_tsne_of_a_dataset_without_text_has_no_genre_colouring(tmp_path):
    inp = make_inputs()
    inp.ds.item_info = pd.DataFrame(index=range(inp.ds.n_items))    # codes given, no item text: no genres
    inp.sem.embeddings = None
    reps = A.item_representations(inp, tmp_path)
    assert list(reps) == ["GNN (lightgcn)", "LM code tokens"]
    ts = A.tsne_analysis(inp, reps, seed=0)
    assert list(ts["colourings"]) == ["first code"] and len(ts["colourings"]["first code"]) == 40
