"""Evaluation scorer "lm": the LM's own item head (agrec/lm/item_scorer.py) as a top-n scorer of the decode stage."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest
import torch

import agrec.decode.stage as decode_stage
from agrec.config import load_profile
from agrec.decode.rank import rank_by_scores
from agrec.errors import AgrecError, ConfigError
from agrec.lm.build import build_fresh
from agrec.lm.item_embedding import add_item_embedding, item_embedding
from agrec.lm.item_scorer import LMItemScorer
from agrec.run.session import open_session
from agrec.scorers import load_scorer

from conftest import CI_PROFILE
from lm_helpers import CODES, tiny_cfg
from tests.decode.tiny_lm import BOS, make_tiny

ITEM_LOSS = {"lm.tiny.item_embedding": True, "lm.tiny.item_loss": 1.0}


class Split:
    """Two users' leave-one-out sequences: history(u, "valid") = train, history(u, "test") = train + valid."""

    train = [np.array([3, 7, 1]), np.array([5])]
    valid = [4, 11]

    def history(self, user, target):
        return self.train[user] if target == "valid" else np.append(self.train[user], self.valid[user])


def compact_prompt(built):
    """The tiny LM's compact prompt: <s> (id 1) then each history item's code tokens."""
    tokens = built.vocab.item_token_ids
    return lambda h: [1] + tokens[torch.as_tensor(np.asarray(h, dtype=np.int64))].reshape(-1).tolist()


def trained_like_model():
    cfg = tiny_cfg(tiny=dataclasses.replace(tiny_cfg().tiny, item_embedding=True, item_loss=1.0))
    built = build_fresh(cfg, CODES, seed=0)
    weight = item_embedding(built.model)
    with torch.no_grad():  # trained-looking vectors: the zero start would score every item alike
        weight.copy_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(1)))
    return built


def test_scores_are_the_hidden_state_at_the_prompt_end_times_the_item_vectors_per_target():
    built = trained_like_model()
    model, prompt = built.model.eval(), compact_prompt(built)
    weight = item_embedding(model)
    scorer = LMItemScorer(model, Split(), prompt, pad_token_id=0, batch_size=2)
    got = {t: scorer.score_users(np.array([0, 1]), t) for t in ("valid", "test")}
    with torch.no_grad():
        for t in ("valid", "test"):
            for u in (0, 1):  # one prompt at a time, no padding: the hidden state of its last token
                ids = torch.tensor([prompt(Split().history(u, t))])
                want = model.model(input_ids=ids).last_hidden_state[0, -1] @ weight.T
                torch.testing.assert_close(got[t][u], want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got["valid"], got["test"])  # the test prompt holds the validation item
    assert got["valid"].shape == (2, 12) and got["valid"].dtype == torch.float32
    # right padding changes nothing: batch 1 gives the same scores
    one = LMItemScorer(model, Split(), prompt, pad_token_id=0, batch_size=1).score_users(np.array([0, 1]), "valid")
    torch.testing.assert_close(one, got["valid"], rtol=1e-5, atol=1e-5)


def test_it_refuses_a_model_without_item_vectors_and_a_profile_without_the_item_loss():
    plain = build_fresh(tiny_cfg(), CODES, seed=0)
    with pytest.raises(AgrecError, match="scorer 'lm' needs the LM's item head"):
        LMItemScorer(plain.model, Split(), compact_prompt(plain), pad_token_id=0)
    with pytest.raises(ConfigError, match=r"evaluation.scorers: 'lm' .* needs .* lm.tiny.item_loss > 0"):
        load_profile(CI_PROFILE, {"evaluation.scorers": ["lm", "sasrec"], "lm.tiny.item_embedding": True})
    assert load_profile(CI_PROFILE, {"evaluation.scorers": ["lm", "sasrec"], **ITEM_LOSS}).evaluation.scorers == ["lm", "sasrec"]
    with pytest.raises(ConfigError, match=r"load_scorer needs the trained LM \(lm=\)"):
        load_scorer(types.SimpleNamespace(), "lm")


def test_decode_stage_ranks_by_the_lm_item_head_and_steers_the_lm_with_it(tmp_path, monkeypatch):
    """Rows "LM items only" (the head's own top 10, history excluded) and "AGRec (lm)"; α = 1 equals the head
    alone, as for every scorer."""
    from agrec.data.stage import prepare_data

    overrides = {"evaluation.max_users": 8, "evaluation.alpha_grid": [0.0, 0.5, 1.0], "evaluation.scorer": "lm",
                 "evaluation.scorers": ["lm"], "evaluation.fuse": None, "decode.beam_size": 10, "decode.top_n": 10,
                 "evaluation.released_code_variants": False, "evaluation.decode_variants": None, **ITEM_LOSS}
    s = open_session(CI_PROFILE, run_dir=tmp_path / "run", report_dir=tmp_path / "rep", overrides=overrides)
    ds, split = prepare_data(s)
    tiny = make_tiny(seed=0, sizes=(16, 16, 16), n_items=ds.n_items, n_users=1)
    weight = add_item_embedding(tiny.model, torch.as_tensor(tiny.tokens))
    with torch.no_grad():
        weight.copy_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(3)))
    prompt = lambda h: [BOS] + tiny.tokens[np.asarray(h, dtype=np.int64)].reshape(-1).tolist()  # noqa: E731
    bundle = types.SimpleNamespace(model=tiny.model, item_token_ids=torch.as_tensor(tiny.tokens), pad_token_id=0,
                                   prompt_ids=prompt)
    monkeypatch.setattr(decode_stage, "train_lm", lambda session: bundle)  # the name the decode stage calls
    report = decode_stage.evaluate_decoding(s, force=True, log=lambda m: None)
    rows = {r["name"]: r for r in report.rows}
    assert {"w/o Graph", "LM items only", "AGRec (lm)", "AGRec (selected)"} <= set(rows)
    users = np.arange(8)
    head = LMItemScorer(tiny.model, split, prompt, pad_token_id=0)
    for t in ("valid", "test"):
        history = [split.history(int(u), t) for u in users]
        want = rank_by_scores(head.score_users(users, t), 10, history).items.numpy()
        assert report.rankings("LM items only", t)["items"][:, :10].tolist() == want.tolist()
    # α = 1: the FSM's top 10 items ranked by the head alone, in its order
    one = np.load(report.folder / "rankings" / f"{decode_stage.slug('α=1 τ=1')}__valid.npz")["items"][:, :10]
    history = [split.history(int(u), "valid") for u in users]
    assert one.tolist() == rank_by_scores(head.score_users(users, "valid"), 10, history).items.numpy().tolist()
