"""lm.tiny.item_embedding: one learned vector per item at the last code token of each item in the input."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from agrec.canonical import keyed
from agrec.config import load_profile
from agrec.errors import AgrecError, ConfigError
from agrec.lm.build import build_fresh, load_checkpoint_model
from agrec.lm.config import TinyLlamaConfig
from agrec.lm.item_embedding import (
    ITEM_EMBEDDING_FILE,
    PARAM,
    ItemIndexer,
    add_item_embedding,
    init_item_embedding,
    item_embedding,
)
from agrec.lm.loss import SupervisedNLL
from agrec.lm.trainer import TrainingInterrupted

from conftest import CI_PROFILE
from lm_helpers import CODES, TOY_CODES, job, losses, tiny_cfg

# TOY_CODES in the tiny vocabulary: item 0 = [4, 9], item 1 = [5, 10], item 2 = [7, 8]; 1 is <s>, 0 is the pad
TOY_ITEMS = torch.tensor([[4, 9], [5, 10], [7, 8]])


def item_cfg(**kw):
    return tiny_cfg(tiny=dataclasses.replace(tiny_cfg().tiny, item_embedding=True), **kw)


def test_indexer_finds_each_complete_item_at_its_last_code_and_nothing_else():
    index = ItemIndexer(TOY_ITEMS, vocab_size=11)
    ids = torch.tensor([[1, 4, 9, 7, 8, 5, 10], [0, 0, 1, 5, 10, 4, 9]])
    assert index(ids).tolist() == [[-1, -1, 0, -1, 2, -1, 1], [-1, -1, -1, -1, 1, -1, 0]]
    # codes of no item ([4, 10]), a level-1 code after a non-code token, and levels out of order: no item
    assert index(torch.tensor([[1, 4, 10, 1, 9, 9, 4]])).tolist() == [[-1] * 7]
    # one token (a decoder step feeding a generated code) cannot complete an item
    assert index(torch.tensor([[9]])).tolist() == [[-1]]
    assert index(torch.tensor([[4], [9]])).tolist() == [[-1], [-1]]


def test_indexer_refuses_codes_that_do_not_name_one_item():
    with pytest.raises(ValueError, match="two items share one code tuple"):
        ItemIndexer(torch.tensor([[4, 9], [4, 9]]), vocab_size=11)
    with pytest.raises(ValueError, match="at level 1 and at another level"):
        ItemIndexer(torch.tensor([[4, 9], [9, 5]]), vocab_size=11)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        ItemIndexer(torch.tensor([[4, 11]]), vocab_size=11)


def test_zero_vectors_leave_the_model_unchanged_and_a_vector_reaches_only_later_positions():
    plain = build_fresh(tiny_cfg(), TOY_CODES, seed=0).model.eval()
    model = build_fresh(item_cfg(), TOY_CODES, seed=0).model.eval()
    weight = item_embedding(model)
    assert weight is not None and tuple(weight.shape) == (3, 32) and not weight.any()
    ids = torch.tensor([[1, 4, 9, 7, 8, 5, 10]])  # items 0, 2, 1 end at positions 2, 4, 6
    with torch.no_grad():
        assert torch.equal(plain(ids).logits, model(ids).logits)  # zero init: the model without it
        weight[2] = 1.0  # item 2's vector
        out = model(ids).logits
        base = plain(ids).logits
    # positions before item 2's last code (4) do not see it, so the codes of item 2 are never given away;
    # from position 4 on (the prediction of the next item's first code) the output changes
    assert torch.equal(out[0, :4], base[0, :4])
    assert all(not torch.allclose(out[0, t], base[0, t]) for t in range(4, 7))


def test_the_vector_is_trained_and_round_trips_through_a_checkpoint(tmp_path):
    res = job(tmp_path, "run", item_cfg(epochs=2)).trainer.fit()
    folder = res.selected
    assert (folder / ITEM_EMBEDDING_FILE).is_file()
    loaded = load_checkpoint_model(folder, item_cfg(epochs=2), CODES, tmp_path).model
    weight = item_embedding(loaded)
    assert weight is not None and tuple(weight.shape) == (12, 32)
    assert float(weight.detach().abs().sum()) > 0  # trained away from zero
    # the model file is a plain Llama: the item vectors live only in their own file
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        assert not any(k.endswith(PARAM) for k in f.keys())
    # ... and the loaded model is the trained one: its validation loss is the run's last evaluation
    again = job(tmp_path, "run", item_cfg(epochs=2)).trainer
    assert again.evaluate(SupervisedNLL(loaded))["val_loss"] == pytest.approx(res.state.evals[-1]["val_loss"], rel=1e-6)
    loaded.get_input_embeddings().item_weight.data.zero_()  # without the trained vectors it is another model
    assert again.evaluate(SupervisedNLL(loaded))["val_loss"] != pytest.approx(res.state.evals[-1]["val_loss"], rel=1e-3)


@pytest.mark.parametrize("item_dropout", [0.0, 0.3])
def test_run_with_item_embedding_resumes_exactly_and_differs_from_one_without(tmp_path, item_dropout):
    # with item dropout the masks come from the RNG: a resumed run must restore it and add the hook again
    cfg = tiny_cfg(epochs=2, tiny=dataclasses.replace(tiny_cfg().tiny, item_embedding=True, item_dropout=item_dropout))
    res = job(tmp_path, "full", cfg).trainer.fit()
    assert losses(res) != losses(job(tmp_path, "plain", tiny_cfg(epochs=2)).trainer.fit())
    broken = job(tmp_path, "broken", cfg)
    broken.trainer.stop_after_step = len(broken.trainer.plan(0)) + 1
    with pytest.raises(TrainingInterrupted):
        broken.trainer.fit()
    resumed = job(tmp_path, "broken", cfg).trainer.fit(resume=True)
    assert losses(resumed) == losses(res)


def test_missing_vectors_file_is_named(tmp_path):
    res = job(tmp_path, "run", item_cfg(epochs=1)).trainer.fit()
    (res.selected / ITEM_EMBEDDING_FILE).unlink()
    with pytest.raises(AgrecError, match=rf"{ITEM_EMBEDDING_FILE}: missing"):
        load_checkpoint_model(res.selected, item_cfg(epochs=1), CODES, tmp_path)


def test_config_refuses_it_where_it_cannot_apply_and_default_keeps_the_key():
    with pytest.raises(ConfigError, match="lm.tiny.item_embedding needs lm.backbone 'tiny' trained in full"):
        item_cfg(finetune="lora")
    assert "item_embedding" not in keyed(tiny_cfg())["tiny"]
    assert keyed(item_cfg())["tiny"]["item_embedding"] is True
    with pytest.raises(ValueError, match="already has an item embedding"):
        add_item_embedding(build_fresh(item_cfg(), TOY_CODES, seed=0).model, TOY_ITEMS)


def test_item_dropout_drops_whole_vectors_in_training_only():
    cfg = tiny_cfg(tiny=dataclasses.replace(tiny_cfg().tiny, item_embedding=True, item_dropout=0.5))
    model = build_fresh(cfg, TOY_CODES, seed=0).model
    embed = model.get_input_embeddings()
    with torch.no_grad():
        embed.item_weight.fill_(1.0)
    ids = torch.tensor([[1, 4, 9, 7, 8, 5, 10] * 20])  # 60 item ends
    ends = ItemIndexer(TOY_ITEMS, 11)(ids) >= 0
    clean = torch.nn.functional.embedding(ids, embed.weight)
    model.eval()
    with torch.no_grad():  # eval: every vector, as is (up to the rounding of adding and subtracting it)
        torch.testing.assert_close(embed(ids) - clean, ends.unsqueeze(-1).float().expand(-1, -1, 32))
        model.train()
        torch.manual_seed(0)
        extra = (embed(ids) - clean)[0]
    # each item end gets its whole vector scaled by 1 / (1 - 0.5) = 2, or nothing; other positions nothing
    per_position = extra[:, 0]
    torch.testing.assert_close(extra, per_position.unsqueeze(-1).expand(-1, 32))
    assert set(per_position[ends[0]].round(decimals=4).tolist()) == {0.0, 2.0}
    assert not per_position[~ends[0]].any()


def test_item_dropout_config_is_checked():
    with pytest.raises(ConfigError, match=r"lm.tiny.item_dropout \(0.1\) needs lm.tiny.item_embedding: true"):
        TinyLlamaConfig(item_dropout=0.1)
    with pytest.raises(ConfigError, match=r"lm.tiny.item_dropout must be in \[0, 1\), got 1.0"):
        TinyLlamaConfig(item_embedding=True, item_dropout=1.0)
    with pytest.raises(ValueError, match="must be in \\[0, 1\\)"):
        add_item_embedding(build_fresh(tiny_cfg(), TOY_CODES, seed=0).model, TOY_ITEMS, dropout=-0.1)
    assert "item_dropout" not in keyed(item_cfg())["tiny"]


def _code_token_norm(model) -> float:
    """Mean norm of the toy vocabulary's code-token input embeddings (ids 4, 5, 7, 8, 9, 10 of TOY_ITEMS)."""
    rows = model.get_input_embeddings().weight.detach()[torch.tensor([4, 5, 7, 8, 9, 10])]
    return float(rows.double().norm(dim=1).mean())


def test_teacher_vectors_narrower_than_the_model_fill_its_first_dimensions_at_the_code_tokens_norm():
    model = build_fresh(item_cfg(), TOY_CODES, seed=0).model
    target = _code_token_norm(model)
    vectors = torch.tensor([[3.0, 4.0], [0.0, 0.0], [6.0, 8.0]])  # row norms 5, 0, 10: mean 5
    out = init_item_embedding(model, vectors)
    weight = item_embedding(model)
    assert weight is not None and torch.equal(weight.detach(), out)
    torch.testing.assert_close(out[:, :2], vectors * (target / 5.0))
    assert not out[:, 2:].any()
    assert float(out.double().norm(dim=1).mean()) == pytest.approx(target, rel=1e-6)
    assert ItemIndexer(TOY_ITEMS, 11).code_token_ids.tolist() == [4, 5, 7, 8, 9, 10]


def test_teacher_vectors_wider_than_the_model_keep_their_geometry_through_the_principal_directions():
    model = build_fresh(item_cfg(), TOY_CODES, seed=0).model  # hidden 32
    basis = torch.linalg.qr(torch.randn(40, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64))[0].T
    coords = torch.tensor([[1.0, 2.0], [-3.0, 0.5], [2.0, -2.5]], dtype=torch.float64)
    vectors = (coords @ basis + 7.0).float()  # 3 items on a shifted plane in 40 dimensions
    out = init_item_embedding(model, vectors).double()
    # centring and a projection onto the leading directions move no item relative to another: the distances are
    # the teacher's, times the one scale that brings the mean norm to the code tokens'
    centred = vectors.double() - vectors.double().mean(0)
    scale = _code_token_norm(model) / float(centred.norm(dim=1).mean())
    torch.testing.assert_close(torch.cdist(out, out), torch.cdist(centred, centred) * scale, rtol=1e-4, atol=1e-5)


def test_teacher_vectors_are_checked():
    model = build_fresh(item_cfg(), TOY_CODES, seed=0).model
    with pytest.raises(ValueError, match=r"shape \(2, 4\), expected \[3, d\]"):
        init_item_embedding(model, torch.ones(2, 4))
    with pytest.raises(ValueError, match="NaN or infinite"):
        init_item_embedding(model, torch.tensor([[1.0], [float("nan")], [0.0]]))
    with pytest.raises(ValueError, match="all zero"):
        init_item_embedding(model, torch.zeros(3, 4))
    with pytest.raises(ValueError, match="has no item embedding to initialise"):
        init_item_embedding(build_fresh(tiny_cfg(), TOY_CODES, seed=0).model, torch.ones(3, 4))


def test_item_init_teacher_starts_training_from_the_teachers_vectors_and_needs_them(tmp_path):
    tiny = dataclasses.replace(tiny_cfg().tiny, item_embedding=True, item_init="teacher")
    cfg = tiny_cfg(epochs=1, tiny=tiny, distill_teacher="sasrec")
    teacher = lambda items, rows, positions: torch.zeros(len(rows), CODES.n_items)  # noqa: E731 (uniform)
    vectors = torch.randn(CODES.n_items, 5, generator=torch.Generator().manual_seed(1))
    started = job(tmp_path, "from-teacher", cfg, teacher=teacher, teacher_items=vectors)
    expected = build_fresh(cfg, CODES, seed=7).model  # the job's seed: the same fresh model
    want = init_item_embedding(expected, vectors)
    weight = item_embedding(started.built.model)
    assert weight is not None and torch.equal(weight.detach(), want)
    with pytest.raises(AgrecError, match="lm.tiny.item_init 'teacher': the teacher's item vectors were not given"):
        job(tmp_path, "none", cfg, teacher=teacher)


def test_item_init_config_is_checked_and_the_default_keeps_the_key():
    with pytest.raises(ConfigError, match=r"lm.tiny.item_init \('teacher'\) needs lm.tiny.item_embedding: true"):
        TinyLlamaConfig(item_init="teacher")
    # an unknown value is the profile loader's to refuse, as for every Literal key
    with pytest.raises(ConfigError, match="key 'lm.tiny.item_init' expects Literal, got 'sasrec'"):
        load_profile(CI_PROFILE, {"lm.tiny.item_embedding": True, "lm.tiny.item_init": "sasrec"})
    with pytest.raises(ConfigError, match="lm.tiny.item_init 'teacher' starts the item vectors from the distillation"):
        tiny_cfg(tiny=TinyLlamaConfig(item_embedding=True, item_init="teacher"))
    assert "item_init" not in keyed(item_cfg())["tiny"]
    taught = tiny_cfg(tiny=TinyLlamaConfig(item_embedding=True, item_init="teacher"), distill_teacher="sasrec")
    assert keyed(taught)["tiny"]["item_init"] == "teacher"
