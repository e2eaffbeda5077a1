"""The training loop: determinism, exact resume, gradient accumulation, save -> reload, refusals."""

import dataclasses

import numpy as np
import pytest
import torch

from agrec.errors import ConfigError
from agrec.lm.build import load_checkpoint_model
from agrec.lm.checkpoint import CheckpointMismatch, load_tree
from agrec.lm.config import LoRASettings
from agrec.lm.stage import load_bundle
from agrec.lm.trainer import TrainingInterrupted, epoch_plan, lr_lambda

from lm_helpers import CODES, SEQS, job, losses, make_standin_checkpoint, tiny_cfg, toy_table


def logits(model, ids):
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_epoch_plan_is_a_function_of_seed_and_epoch_and_splits_global_batches():
    a = epoch_plan(10, seed=1, epoch=0, batch_size=2, grad_accum=2, world=1)
    # global batches of 4 = 2 micro-batches of 2; the last 2 samples still give each micro-batch one
    assert [[len(m) for m in p] for p in a] == [[2, 2], [2, 2], [1, 1]]
    assert sorted(np.concatenate([np.concatenate(p) for p in a]).tolist()) == list(range(10))
    # with 9 samples the last one cannot feed 2 micro-batches: dropped
    assert [[len(m) for m in p] for p in epoch_plan(9, 1, 0, 2, 2, 1)] == [[2, 2], [2, 2]]
    b = epoch_plan(10, seed=1, epoch=0, batch_size=2, grad_accum=2, world=1)
    assert all(np.array_equal(x, y) for p, q in zip(a, b) for x, y in zip(p, q))
    c = epoch_plan(10, seed=1, epoch=1, batch_size=2, grad_accum=2, world=1)
    assert not all(np.array_equal(x, y) for p, q in zip(a, c) for x, y in zip(p, q))
    # two processes with batch b see the global batches of one process with batch 2b
    one = epoch_plan(11, seed=3, epoch=0, batch_size=4, grad_accum=1, world=1)
    two = epoch_plan(11, seed=3, epoch=0, batch_size=2, grad_accum=1, world=2)
    assert [sorted(np.concatenate(p)) for p in one] == [sorted(np.concatenate(p)) for p in two]


def test_lr_schedule_warms_up_then_decays():
    f = lr_lambda(warmup=2, total=6, schedule="cosine")
    assert [round(f(s), 4) for s in range(7)] == [0.5, 1.0, 1.0, 0.8536, 0.5, 0.1464, 0.0]
    g = lr_lambda(warmup=0, total=4, schedule="linear")
    assert [g(s) for s in range(4)] == [1.0, 0.75, 0.5, 0.25]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_tiny_learns_and_interrupted_run_resumes_exactly(tmp_path, precision):
    cfg = tiny_cfg(epochs=3, precision=precision)
    full = job(tmp_path, "full", cfg)
    res = full.trainer.fit()
    assert [r["epoch"] for r in res.state.evals] == [1, 2, 3]
    assert res.state.evals[-1]["val_loss"] < res.state.evals[0]["val_loss"]
    assert res.selected.name == "epoch-003"
    assert sorted(p.name for p in (tmp_path / "full" / "checkpoints").iterdir()) == ["epoch-001", "epoch-002",
                                                                                     "epoch-003"]
    steps_per_epoch = len(full.trainer.plan(0))
    # the same run, killed two steps into epoch 2 (after the epoch-1 checkpoint) ...
    broken = job(tmp_path, "broken", cfg)
    broken.trainer.stop_after_step = steps_per_epoch + 2
    with pytest.raises(TrainingInterrupted):
        broken.trainer.fit()
    # ... and resumed by a fresh process: the loss of every step is the uninterrupted run's, exactly
    resumed = job(tmp_path, "broken", cfg).trainer.fit(resume=True)
    assert losses(resumed) == losses(res)
    assert resumed.state.evals == res.state.evals
    a = load_checkpoint_model(res.selected, cfg, CODES, tmp_path).model
    b = load_checkpoint_model(resumed.selected, cfg, CODES, tmp_path).model
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_run_with_hidden_dropout_resumes_exactly(tmp_path):
    # lm.tiny.dropout's hooks are not in the checkpoint and its masks come from the RNG: a resumed run must add the
    # hooks again and restore the RNG, or its losses drift from the uninterrupted run's
    cfg = tiny_cfg(epochs=2, tiny=dataclasses.replace(tiny_cfg().tiny, dropout=0.3))
    res = job(tmp_path, "full", cfg).trainer.fit()
    no_dropout = job(tmp_path, "plain", tiny_cfg(epochs=2)).trainer.fit()
    assert losses(res) != losses(no_dropout)
    broken = job(tmp_path, "broken", cfg)
    broken.trainer.stop_after_step = len(broken.trainer.plan(0)) + 1
    with pytest.raises(TrainingInterrupted):
        broken.trainer.fit()
    resumed = job(tmp_path, "broken", cfg).trainer.fit(resume=True)
    assert losses(resumed) == losses(res)


def test_a_damaged_checkpoint_is_skipped_on_resume_and_the_run_stays_exact(tmp_path):
    cfg = tiny_cfg(epochs=3)
    res = job(tmp_path, "full", cfg).trainer.fit()
    steps_per_epoch = len(job(tmp_path, "probe", cfg).trainer.plan(0))
    broken = job(tmp_path, "broken", cfg)
    broken.trainer.stop_after_step = 2 * steps_per_epoch + 1  # epoch-001 and epoch-002 written
    with pytest.raises(TrainingInterrupted):
        broken.trainer.fit()
    ckpts = tmp_path / "broken" / "checkpoints"
    assert (ckpts / "epoch-002" / "checksums.json").is_file()
    victim = next(p for p in sorted((ckpts / "epoch-002").iterdir()) if p.suffix == ".safetensors")
    victim.write_bytes(b"garbage" * 10)
    logs = []
    again = job(tmp_path, "broken", cfg)
    again.trainer.log = logs.append
    resumed = again.trainer.fit(resume=True)
    assert any(line.startswith("lm: not resuming from damaged checkpoint epoch-002:") and victim.name in line
               for line in logs), logs
    assert any("resuming from epoch-001" in line for line in logs), logs
    assert losses(resumed) == losses(res)  # resumed from epoch 1: still the uninterrupted run, exactly


def test_save_then_reload_gives_identical_logits_and_mismatches_are_refused(tmp_path):
    cfg = tiny_cfg(epochs=1)
    j = job(tmp_path, "run", cfg)
    res = j.trainer.fit()
    ids = torch.tensor([j.prompt.prompt_ids([0, 1, 2]), j.prompt.prompt_ids([3, 4, 5])])
    want = logits(j.built.model, ids)
    reloaded = load_checkpoint_model(res.selected, cfg, CODES, tmp_path)
    assert torch.equal(logits(reloaded.model, ids), want)
    bundle = load_bundle(res.selected, cfg, CODES, "k", tmp_path)
    assert torch.equal(logits(bundle.model, ids), want)
    assert bundle.item_token_ids.shape == (CODES.n_items, 2) and not bundle.model.training
    assert bundle.prompt_ids([0, 1, 2]) == ids[0].tolist()
    # refusals name what differs
    other = toy_table(seed=5)
    with pytest.raises(CheckpointMismatch, match="another code table"):
        load_bundle(res.selected, cfg, other, "k", tmp_path)
    with pytest.raises(CheckpointMismatch, match=r"another lm config \(lm.lr: 0.003 in the checkpoint, 0.01 now"):
        load_bundle(res.selected, tiny_cfg(epochs=1, lr=1.0e-2), CODES, "k", tmp_path)
    # a run whose vocabulary has one more token (the same code table, another tokenizer) is refused
    import agrec.lm.checkpoint as ck
    found = ck.read_manifest(res.selected)
    with pytest.raises(CheckpointMismatch, match=rf"tokenizer does not match this run's \(vocabulary "
                                                 rf"{found['vocab_size']} vs {found['vocab_size'] + 1}"):
        ck.check_manifest(found, {**found, "vocab_size": found["vocab_size"] + 1}, res.selected)
    with pytest.raises(CheckpointMismatch, match="belongs to another run"):
        load_bundle(res.selected, cfg, CODES, "another-key", tmp_path)


def test_gradient_accumulation_matches_a_larger_batch(tmp_path):
    big = job(tmp_path, "big", tiny_cfg(epochs=1, batch_size=8)).trainer.fit()
    acc = job(tmp_path, "acc", tiny_cfg(epochs=1, batch_size=4, grad_accum=2)).trainer.fit()
    a = [r["loss"] for r in big.state.steps]
    b = [r["loss"] for r in acc.state.steps]
    assert len(a) == len(b) > 2
    np.testing.assert_allclose(b, a, rtol=1e-5)


def test_lora_run_resumes_exactly_from_a_mid_epoch_checkpoint(tmp_path):
    make_standin_checkpoint(tmp_path / "standin")
    cfg = tiny_cfg(backbone="path:standin", epochs=2, save_every_steps=2, lr=1.0e-3,
                   lora=LoRASettings(r=4, alpha=8, dropout=0.05))
    assert cfg.finetune_mode == "lora" and cfg.prompt_format == "lcrec"
    full = job(tmp_path, "full", cfg).trainer.fit()
    broken = job(tmp_path, "broken", cfg)
    broken.trainer.stop_after_step = 3
    with pytest.raises(TrainingInterrupted):
        broken.trainer.fit()
    assert [p.name for _, p in broken.trainer.checkpoints()] == ["step-0000002"]
    state = load_tree(tmp_path / "broken" / "checkpoints" / "step-0000002", "trainer_state")
    assert state["state"]["global_step"] == 2 and state["state"]["step_in_epoch"] == 2
    resumed = job(tmp_path, "broken", cfg).trainer.fit(resume=True)
    assert losses(resumed) == losses(full) and resumed.state.evals == full.state.evals
    # mid-epoch checkpoints are dropped once an epoch checkpoint follows them
    assert [p.name for _, p in job(tmp_path, "broken", cfg).trainer.checkpoints()] == ["epoch-001", "epoch-002"]
    # the adapter checkpoint reloads with plain peft as well
    from peft import AutoPeftModelForCausalLM

    ours = load_checkpoint_model(resumed.selected, cfg, CODES, tmp_path).model
    theirs = AutoPeftModelForCausalLM.from_pretrained(resumed.selected)
    ids = torch.tensor([[5, 9, 14, 3]])
    assert torch.equal(logits(ours, ids), logits(theirs, ids))


def _scripted(trainer, ndcgs):
    """Replace the job's recommendation metric by a script: epoch i reports ndcgs[i] (the selection logic is
    what is tested; validation_ndcg itself is tested below)."""
    calls = []

    def rec(model):
        calls.append(model.training)
        return {"val_HR@10": 0.5, "val_NDCG@10": ndcgs[len(calls) - 1]}

    trainer.rec_eval = rec
    return calls


def test_select_ndcg_hands_on_the_epoch_of_the_best_validation_ndcg(tmp_path):
    j = job(tmp_path, "ndcg", tiny_cfg(epochs=3, select="ndcg", select_users=8))
    calls = _scripted(j.trainer, [0.10, 0.30, 0.20])
    res = j.trainer.fit()
    assert [r["val_NDCG@10"] for r in res.state.evals] == [0.10, 0.30, 0.20]
    assert res.selected.name == "epoch-002" and calls == [False, False, False]   # evaluated in eval mode
    assert sorted(p.name for p in (tmp_path / "ndcg" / "checkpoints").iterdir()) == ["epoch-001", "epoch-002",
                                                                                     "epoch-003"]


def test_patience_stops_after_epochs_without_a_better_metric_and_a_resume_does_not_continue(tmp_path):
    cfg = tiny_cfg(epochs=5, select="ndcg", select_users=8, patience=2)
    j = job(tmp_path, "p", cfg)
    _scripted(j.trainer, [0.30, 0.20, 0.25, 0.9, 0.9])
    res = j.trainer.fit()
    # epoch 1 is best; epochs 2 and 3 are not better: stop after epoch 3, hand on epoch 1
    assert [r["epoch"] for r in res.state.evals] == [1, 2, 3] and res.state.stopped_by_patience
    assert res.selected.name == "epoch-001"
    again = job(tmp_path, "p", cfg)
    _scripted(again.trainer, [0.9, 0.9])
    resumed = again.trainer.fit(resume=True)
    assert [r["epoch"] for r in resumed.state.evals] == [1, 2, 3] and resumed.selected.name == "epoch-001"
    # patience on the validation loss: "best" keeps the lowest loss
    best = job(tmp_path, "b", tiny_cfg(epochs=2, select="best", patience=1)).trainer.fit()
    assert best.selected.name == f"epoch-{1 + int(np.argmin([r['val_loss'] for r in best.state.evals])):03d}"


def test_validation_ndcg_is_the_lm_alone_on_a_fixed_sample_of_users(tmp_path):
    from agrec.decode.beam import generate_items
    from agrec.decode.config import DecodeConfig
    from agrec.decode.trie import ItemTrie
    from agrec.lm.stage import validation_ndcg

    cfg = tiny_cfg(epochs=1, select="ndcg", select_users=10, select_beam_size=12)
    j = job(tmp_path, "v", cfg)
    histories, targets = [s[:-1] for s in SEQS], np.array([int(s[-1]) for s in SEQS])
    f = validation_ndcg(cfg, j.prompt.prompt_ids, j.built.vocab.item_token_ids, histories, targets, 7,
                        int(j.built.tokenizer.pad_token_id))
    got = f(j.built.model)
    # by hand: the same 10 users (drawn with the seed), decoded at α = 0, the target's rank among 10 items
    users = np.sort(np.random.default_rng(7).choice(len(SEQS), size=10, replace=False))
    res = generate_items(j.built.model, [j.prompt.prompt_ids(histories[u]) for u in users],
                         ItemTrie.build(j.built.vocab.item_token_ids), cfg=DecodeConfig(alpha=0.0, beam_size=12),
                         exclude=[histories[u] for u in users], k=10, pad_token_id=int(j.built.tokenizer.pad_token_id))
    ranks = [list(row).index(t) if t in row else None for row, t in zip(res.items.tolist(), targets[users])]
    hr = sum(r is not None for r in ranks) / 10
    ndcg = sum(1 / np.log2(r + 2) for r in ranks if r is not None) / 10
    assert got["val_HR@10"] == pytest.approx(hr) and got["val_NDCG@10"] == pytest.approx(ndcg)
    assert f(j.built.model) == got                       # the same users every time


def test_selection_options_are_checked():
    with pytest.raises(Exception, match="lm.patience .* needs lm.select 'best' or 'ndcg'"):
        tiny_cfg(patience=2)
    with pytest.raises(Exception, match="lm.select_beam_size >= 10"):
        tiny_cfg(select="ndcg", select_beam_size=5)


def test_label_smoothing_is_the_mixture_of_nll_and_the_uniform_cross_entropy():
    from agrec.lm.loss import SupervisedNLL

    from agrec.lm.build import build_fresh

    cfg = tiny_cfg()
    model = build_fresh(cfg, CODES, 0, None, log=lambda s: None).model.eval()
    ids = torch.tensor([[3, 4, 5, 6, 7, 8]])
    labels = torch.tensor([[-100, -100, -100, 6, 7, 8]])
    plain, smooth = SupervisedNLL(model), SupervisedNLL(model, label_smoothing=0.2)
    with torch.no_grad():
        logits, targets = plain.supervised_logits(ids, None, labels)
        logp = torch.log_softmax(logits.float(), -1)
        nll = -logp[torch.arange(len(targets)), targets].sum()
        uniform = -logp.mean(-1).sum()
        assert float(plain(ids, None, labels)) == pytest.approx(float(nll), rel=1e-6)
        assert float(smooth(ids, None, labels)) == pytest.approx(float(0.8 * nll + 0.2 * uniform), rel=1e-6)
    with pytest.raises(Exception, match=r"lm.label_smoothing must be in \[0, 1\)"):
        tiny_cfg(label_smoothing=1.0)


def test_validation_loss_on_a_seeded_sample_of_users(tmp_path):
    from agrec.decode.evaluate import validation_users
    from agrec.lm.prompts import build_eval_samples

    full = job(tmp_path, "all", tiny_cfg(epochs=1))
    part = job(tmp_path, "part", tiny_cfg(epochs=1, val_loss_users=6))
    # the decode stage's draw of 6 of the 24 users with the run's seed (7), in user order
    users = validation_users(len(SEQS), 6, seed=7)
    assert len(users) == 6 and users.tolist() != list(range(6))
    want = build_eval_samples(part.prompt, [SEQS[int(u)][:-1] for u in users], [int(SEQS[int(u)][-1]) for u in users])
    assert [x.tolist() for x in part.valid.input_ids] == [x.tolist() for x in want.input_ids]
    assert [x.tolist() for x in part.valid.labels] == [x.tolist() for x in want.labels]
    # training is the same; only the end-of-epoch numbers come from the sample
    a, b = full.trainer.fit(), part.trainer.fit()
    assert losses(a) == losses(b)
    assert a.state.evals[0]["val_loss"] != b.state.evals[0]["val_loss"]
    # a sample at least as large as the users is every user: the very same run
    c = job(tmp_path, "big", tiny_cfg(epochs=1, val_loss_users=100)).trainer.fit()
    assert c.state.evals == a.state.evals
    with pytest.raises(ConfigError, match="lm.val_loss_users must be > 0 or null, got 0"):
        tiny_cfg(val_loss_users=0)
