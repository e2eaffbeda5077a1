"""The decode stage asks every scorer per target (train-only scores for valid, train + validation for test),
keeps only the top items it needs, and gives each scorer its own row and an AGRec row."""

import types

import numpy as np
import pytest
import torch

import agrec.decode.stage as decode_stage
from agrec.decode.config import EvalConfig
from agrec.decode.evaluate import EvalInputs, scorer_rankings
from agrec.decode.fusion import fuse_rankings
from agrec.decode.rank import rank_by_scores, top_n_items
from agrec.errors import ConfigError
from agrec.metrics import evaluate_rankings
from agrec.run.session import open_session
from conftest import CI_PROFILE
from tests.decode.tiny_lm import BOS, make_tiny


class FakeScorer:
    """Scores that differ per target: valid = a seeded random table, test = another; records every call."""

    def __init__(self, n_users, n_items, seed):
        g = torch.Generator().manual_seed(seed)
        self.tables = {t: torch.randn(n_users, n_items, generator=g) for t in ("valid", "test")}
        self.calls = []

    def score_users(self, users, target):
        self.calls.append((target, np.asarray(users).tolist()))
        return self.tables[target][torch.as_tensor(users)]


def test_scorer_rankings_batches_per_target_and_equals_the_full_ranking():
    scorer = FakeScorer(7, 30, seed=0)
    users = np.array([6, 0, 3, 2, 5])
    exclude = [np.array([1, 2]), np.array([], dtype=np.int64), np.array([29]), np.arange(25), np.array([4])]
    inputs = {t: EvalInputs(users=users, prompts=[[]] * 5, exclude=exclude, targets=np.zeros(5, np.int64))
              for t in ("valid", "test")}
    out = scorer_rankings(scorer, inputs, k=8, batch_size=2)
    assert scorer.calls == [("valid", [6, 0]), ("valid", [3, 2]), ("valid", [5]),
                            ("test", [6, 0]), ("test", [3, 2]), ("test", [5])]
    for t in ("valid", "test"):
        full = rank_by_scores(scorer.tables[t][users], 8, exclude)
        assert torch.equal(out[t].items, full.items) and torch.equal(out[t].scores, full.scores)
        items, scores = top_n_items(scorer.tables[t][users], 3, exclude)   # the FSM's inputs: the first columns
        assert torch.equal(out[t].items[:, :3], items) and torch.equal(out[t].scores[:, :3], scores)
    assert out["valid"].items[3, 5:].tolist() == [-1, -1, -1]                 # user 2: only 5 items remain


def test_scorer_config_names_and_migrated_keys():
    assert EvalConfig().scorer == "lightgcn" and EvalConfig(scorers=["sasrec", "sgl"]).scorers == ["sasrec", "sgl"]
    with pytest.raises(ConfigError, match=r"evaluation.scorers: unknown scorer\(s\) \['gru4rec'\]"):
        EvalConfig(scorers=["gru4rec"])
    with pytest.raises(ConfigError, match="lists a scorer twice"):
        EvalConfig(scorers=["sgl", "sgl"])
    from agrec.config import load_profile
    with pytest.raises(ConfigError, match="evaluation.compare_gnns is now evaluation.scorers"):
        load_profile(CI_PROFILE, {"evaluation.compare_gnns": ["sgl"]})


def test_decode_stage_uses_each_targets_scores_and_a_row_per_scorer(tmp_path, monkeypatch):
    from agrec.data.stage import prepare_data

    overrides = {"evaluation.max_users": 5, "evaluation.alpha_grid": [0.0, 0.5, 1.0], "evaluation.scorer": "lightgcn",
                 "evaluation.scorers": ["lightgcn", "sasrec"], "decode.beam_size": 6, "decode.top_n": 4}
    s = open_session(CI_PROFILE, run_dir=tmp_path / "run", report_dir=tmp_path / "rep", overrides=overrides)
    ds, split = prepare_data(s)
    tiny = make_tiny(seed=0, sizes=(16, 16, 16), n_items=ds.n_items, n_users=1)
    prompt = lambda h: [BOS] + tiny.tokens[np.asarray(h, dtype=np.int64)].reshape(-1).tolist()  # noqa: E731
    bundle = types.SimpleNamespace(model=tiny.model, item_token_ids=torch.as_tensor(tiny.tokens), pad_token_id=0,
                                   prompt_ids=prompt)
    monkeypatch.setattr(decode_stage, "train_lm", lambda session: bundle)  # the name the decode stage calls
    scorers = {"lightgcn": FakeScorer(split.n_users, ds.n_items, 1), "sasrec": FakeScorer(split.n_users, ds.n_items, 2)}
    monkeypatch.setattr(decode_stage, "load_scorer", lambda session, name, lm=None: scorers[name])

    report = decode_stage.evaluate_decoding(s, force=True, log=lambda m: None)
    users = np.arange(5)
    for sc in scorers.values():                        # each target asked once, for its own scores
        assert sc.calls == [("valid", users.tolist()), ("test", users.tolist())]
    names = [r["name"] for r in report.rows]
    assert names[:5] == ["w/o Graph", "GNN only (lightgcn)", "SASRec only", "AGRec (lightgcn)", "α=1 (lightgcn)"]
    assert "AGRec (sasrec)" in names and "AGRec (selected)" in names
    # the released code's rows are decoded at the main row's α, when the graph is used at all
    assert ("released code: mix=logit" in names) == (report.chosen["alpha"] > 0)
    rows = {r["name"]: r for r in report.rows}
    for name, row in (("lightgcn", "GNN only (lightgcn)"), ("sasrec", "SASRec only")):
        for t in ("valid", "test"):
            history = [split.history(int(u), t) for u in users]
            expected = rank_by_scores(scorers[name].tables[t][users], 6, history)
            saved = report.rankings(row, t)
            assert saved["items"].tolist() == expected.items.tolist()      # test: the test-time scores
            assert rows[row]["metrics"][t] == evaluate_rankings(expected.items.numpy(), split.targets(t)[users],
                                                                (5, 10))
            assert not any(set(saved["items"][i].tolist()) & set(history[i].tolist()) for i in range(5))
    for name in ("lightgcn", "sasrec"):   # a row that chose α = 0 is the LM alone: no scorer steers it
        row = rows[f"AGRec ({name})"]
        assert row["settings"]["scorer"] == (name if row["settings"]["alpha"] > 0 else None)


def test_every_scorer_chooses_its_own_alpha_and_alpha_one_equals_the_scorer_alone(tmp_path, monkeypatch):
    """Per scorer: its AGRec row is its own curve's best validation point, and α = 1 (sum aggregation, top_n >= K)
    ranks exactly the scorer's top 10; the selected row is the best AGRec row on validation, its regret taken
    on the test curve of the same grid."""
    from agrec.data.stage import prepare_data

    overrides = {"evaluation.max_users": 12, "evaluation.alpha_grid": [0.0, 0.5, 1.0], "evaluation.scorer": "lightgcn",
                 "evaluation.scorers": ["lightgcn", "sasrec"], "decode.beam_size": 10, "decode.top_n": 10,
                 "evaluation.released_code_variants": False, "evaluation.decode_variants": None,
                 "evaluation.fuse": ["lightgcn", "sasrec"], "evaluation.fusion_weights": [0.3, 0.7]}
    s = open_session(CI_PROFILE, run_dir=tmp_path / "run", report_dir=tmp_path / "rep", overrides=overrides)
    ds, split = prepare_data(s)
    tiny = make_tiny(seed=0, sizes=(16, 16, 16), n_items=ds.n_items, n_users=1)
    prompt = lambda h: [BOS] + tiny.tokens[np.asarray(h, dtype=np.int64)].reshape(-1).tolist()  # noqa: E731
    bundle = types.SimpleNamespace(model=tiny.model, item_token_ids=torch.as_tensor(tiny.tokens), pad_token_id=0,
                                   prompt_ids=prompt)
    monkeypatch.setattr(decode_stage, "train_lm", lambda session: bundle)  # the name the decode stage calls
    scorers = {"lightgcn": FakeScorer(split.n_users, ds.n_items, 1), "sasrec": FakeScorer(split.n_users, ds.n_items, 2)}
    monkeypatch.setattr(decode_stage, "load_scorer", lambda session, name, lm=None: scorers[name])
    report = decode_stage.evaluate_decoding(s, force=True, log=lambda m: None)
    saved = decode_stage.read_results(report.folder)
    rows = {r["name"]: r for r in report.rows}
    curves = {"lightgcn": report.curve, "sasrec": saved["scorer_curves"]["sasrec"]}
    users = np.arange(12)
    for name, only in (("lightgcn", "GNN only (lightgcn)"), ("sasrec", "SASRec only")):
        # α = 1 on validation: the scorer's own top 10, in its order, for every user (history excluded)
        one = decode_stage.slug(("" if name == "lightgcn" else f"AGRec ({name}) ") + "α=1 τ=1")
        got = np.load(report.folder / "rankings" / f"{one}__valid.npz")["items"][:, :10]
        history = [split.history(int(u), "valid") for u in users]
        want = rank_by_scores(scorers[name].tables["valid"][users], 10, history).items.numpy()
        assert got.tolist() == want.tolist()
        point = next(p for p in curves[name] if p["alpha"] == 1.0)
        assert point["valid"] == rows[only]["metrics"]["valid"]
        # the AGRec row sits at its own best validation point (ties to the smaller α)
        best = max(curves[name], key=lambda p: (p["valid"]["NDCG@10"], -p["alpha"]))
        agrec = rows[f"AGRec ({name})"]
        assert agrec["settings"]["alpha"] == best["alpha"] and agrec["metrics"]["valid"] == best["valid"]
        assert agrec["metrics"]["valid"]["NDCG@10"] >= max(rows["w/o Graph"]["metrics"]["valid"]["NDCG@10"],
                                                          rows[only]["metrics"]["valid"]["NDCG@10"])
    # the fused row: its weight, α and τ are its grid's best validation point; at α = 1 it ranks the fused top 10
    fusion = saved["fusion"]
    assert fusion["row"] == "AGRec (lightgcn+sasrec)" and len(fusion["curve"]) == 2 * 3
    best = max(fusion["curve"], key=lambda p: (p["valid"]["NDCG@10"], -p["alpha"], -p["tau"]))
    fused_row = rows["AGRec (lightgcn+sasrec)"]
    assert fused_row["metrics"]["valid"] == best["valid"] and fused_row["settings"]["fused"] == ["lightgcn", "sasrec"]
    history = [split.history(int(u), "valid") for u in users]
    ranked = {n: rank_by_scores(scorers[n].tables["valid"][users], 10, history) for n in scorers}
    for w in (0.3, 0.7):
        one = decode_stage.slug(f"AGRec (lightgcn+sasrec) w={w:g} α=1 τ=1")
        got = np.load(report.folder / "rankings" / f"{one}__valid.npz")["items"][:, :10]
        want = fuse_rankings(ranked["lightgcn"], ranked["sasrec"], w, 10, 10).items.numpy()
        assert got.tolist() == want.tolist()
    sel = saved["selected"]
    candidates = ["AGRec (lightgcn)", "AGRec (sasrec)", "AGRec (lightgcn+sasrec)"]
    top = max(candidates, key=lambda n: (rows[n]["metrics"]["valid"]["NDCG@10"], -candidates.index(n)))
    assert sel["source"] == top and rows["AGRec (selected)"]["metrics"] == rows[top]["metrics"]
    assert rows["AGRec (selected)"]["settings"]["source"] == top
    reg = sel["regret"]
    assert reg["chosen"]["test"] == rows[top]["metrics"]["test"]["NDCG@10"]
    assert reg["regret"] == reg["test_best"]["test"] - reg["chosen"]["test"] >= 0
    assert np.array_equal(report.rankings("AGRec (selected)", "test")["items"], report.rankings(top, "test")["items"])
