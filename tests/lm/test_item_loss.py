"""lm.tiny.item_loss: a dense next-item cross-entropy over all items beside the codes' NLL (agrec/lm/loss.py)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from agrec.canonical import keyed
from agrec.errors import ConfigError
from agrec.lm.build import build_fresh, load_checkpoint_model
from agrec.lm.config import TinyLlamaConfig
from agrec.lm.item_embedding import item_embedding
from agrec.lm.loss import SupervisedNLL
from agrec.lm.trainer import TrainingInterrupted

from lm_helpers import CODES, TOY_CODES, job, losses, tiny_cfg

# TOY_CODES in the tiny vocabulary: item 0 = [4, 9], item 1 = [5, 10], item 2 = [7, 8]; 1 is <s>, 0 is the pad
IDS = torch.tensor([[1, 4, 9, 7, 8, 5, 10]])  # <s>, then items 0, 2, 1
ALL = torch.tensor([[-100, 4, 9, 7, 8, 5, 10]])  # Eq. 7: every item's codes supervised


def item_cfg(item_loss: float = 1.0, **kw):
    tiny = dataclasses.replace(tiny_cfg().tiny, item_embedding=True, item_loss=item_loss)
    return tiny_cfg(tiny=tiny, **kw)


def toy_model(item_loss: float = 1.0):
    return build_fresh(item_cfg(item_loss), TOY_CODES, seed=0).model.eval()


def test_targets_are_the_supervised_items_at_the_position_before_their_first_code():
    loss = SupervisedNLL(toy_model(), item_loss=1.0)
    # <s> predicts item 0, item 0's last code predicts item 2, item 2's last code predicts item 1
    assert loss.next_item_targets(IDS, ALL).tolist() == [[0, -1, 2, -1, 1, -1, -1]]
    # only the answer supervised (the validation samples, LC-Rec's sliding samples): only its position
    answer = torch.tensor([[-100, -100, -100, -100, -100, 5, 10]])
    assert loss.next_item_targets(IDS, answer).tolist() == [[-1, -1, -1, -1, 1, -1, -1]]
    # an item supervised in part is no target
    half = torch.tensor([[-100, 4, 9, -100, 8, 5, 10]])
    assert loss.next_item_targets(IDS, half).tolist() == [[0, -1, -1, -1, 1, -1, -1]]
    # a packed row: codes that straddle two segments are no item of either
    ids, labels = torch.tensor([[1, 4, 9, 7, 8]]), torch.tensor([[-100, 4, 9, 7, 8]])
    assert loss.next_item_targets(ids, labels).tolist() == [[0, -1, 2, -1, -1]]
    segments = torch.tensor([[0, 0, 0, 0, 1]])
    assert loss.next_item_targets(ids, labels, segments).tolist() == [[0, -1, -1, -1, -1]]
    # rows no longer than one item hold no target
    assert loss.next_item_targets(torch.tensor([[4, 9]]), torch.tensor([[4, 9]])).tolist() == [[-1, -1]]


def test_loss_is_the_codes_nll_plus_lambda_times_the_item_cross_entropy():
    model = toy_model()
    plain, with_items = SupervisedNLL(model), SupervisedNLL(model, item_loss=0.5)
    with torch.no_grad():
        codes = float(plain(IDS, None, ALL))
        # zero item vectors (the start): every item scores 0, so each of the 3 targets costs ln 3
        assert float(with_items(IDS, None, ALL)) == pytest.approx(codes + 0.5 * 3 * math.log(3), rel=1e-6)
        weight = item_embedding(model)
        assert weight is not None
        weight.copy_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)))
        codes = float(plain(IDS, None, ALL))  # the input vectors changed the codes' NLL too
        hidden = model.model(IDS).last_hidden_state[0, [0, 2, 4]]  # the positions before items 0, 2, 1
        dense = float(F.cross_entropy(hidden @ weight.T, torch.tensor([0, 2, 1]), reduction="sum"))
        assert float(with_items(IDS, None, ALL)) == pytest.approx(codes + 0.5 * dense, rel=1e-5)
        # the validation path (teacher-forced code logits) does not change with the item term
        a, b = plain.supervised_logits(IDS, None, ALL), with_items.supervised_logits(IDS, None, ALL)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_item_loss_trains_a_different_model_and_resumes_exactly(tmp_path):
    cfg = item_cfg(1.0, epochs=2)
    res = job(tmp_path, "full", cfg).trainer.fit()
    without = job(tmp_path, "without", item_cfg(0.0, epochs=2)).trainer.fit()
    assert losses(res) != losses(without)
    # the logged training loss holds the item term (ln 12 per item at the start), the validation loss does not
    assert res.state.steps[0]["loss"] > without.state.steps[0]["loss"] + 1.0
    trainer = job(tmp_path, "full", cfg).trainer
    model = load_checkpoint_model(res.selected, cfg, CODES, tmp_path).model
    with_term, codes_only = SupervisedNLL(model, item_loss=1.0), SupervisedNLL(model)
    assert trainer.evaluate(with_term)["val_loss"] == trainer.evaluate(codes_only)["val_loss"]
    assert trainer.evaluate(codes_only)["val_loss"] == pytest.approx(res.state.evals[-1]["val_loss"], rel=1e-6)
    broken = job(tmp_path, "broken", cfg)
    broken.trainer.stop_after_step = len(broken.trainer.plan(0)) + 1
    with pytest.raises(TrainingInterrupted):
        broken.trainer.fit()
    assert losses(job(tmp_path, "broken", cfg).trainer.fit(resume=True)) == losses(res)


def test_config_and_module_refuse_it_without_item_vectors_and_default_keeps_the_key():
    with pytest.raises(ConfigError, match=r"lm.tiny.item_loss \(1.0\) needs lm.tiny.item_embedding: true"):
        TinyLlamaConfig(item_loss=1.0)
    with pytest.raises(ConfigError, match=r"lm.tiny.item_loss must be >= 0, got -0.5"):
        TinyLlamaConfig(item_embedding=True, item_loss=-0.5)
    with pytest.raises(ValueError, match="item_loss needs .* with an item embedding"):
        SupervisedNLL(build_fresh(tiny_cfg(), TOY_CODES, seed=0).model, item_loss=1.0)
    with pytest.raises(ValueError, match="item_loss must be >= 0"):
        SupervisedNLL(toy_model(), item_loss=-1.0)
    assert "item_loss" not in keyed(item_cfg(0.0))["tiny"]
    assert keyed(item_cfg(0.25))["tiny"]["item_loss"] == 0.25
