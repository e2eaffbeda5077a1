"""lm.batching: pad (unchanged), bucket and pack plans; packed forwards equal separate ones exactly."""

import numpy as np
import pytest
import torch

from agrec.canonical import canonical
from agrec.errors import ConfigError
from agrec.lm.config import LMConfig, LoRASettings
from agrec.lm.batching import block_causal_mask, bucket_plan, check_packable, collate_packed, pack_rows
from agrec.lm.loss import SupervisedNLL
from agrec.lm.prompts import IGNORE, Samples
from agrec.lm.stage import make_training_job
from agrec.lm.trainer import collate, epoch_plan

from lm_helpers import make_standin_checkpoint, tiny_cfg, toy_sequences, toy_table

CODES = toy_table()
SEQS = toy_sequences()


def job(tmp_path, name, cfg, seqs=SEQS):
    return make_training_job(cfg, CODES, [s[:-1] for s in seqs], [s[:-1] for s in seqs], [int(s[-1]) for s in seqs],
                             tmp_path / name, seed=7, run_key="k", base_dir=tmp_path, log=lambda s: None)


def old_epoch_plan(n, seed, epoch, batch_size, grad_accum, world):
    """The trainer's plan before lm.batching existed (copied verbatim): pad must reproduce it."""
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    per_step = batch_size * grad_accum * world
    parts = grad_accum * world
    plan = []
    for s in range(0, n, per_step):
        chunk = perm[s:s + per_step]
        if len(chunk) < parts:
            break
        plan.append(np.array_split(chunk, parts))
    return plan


def flat(plan):
    return np.concatenate([np.concatenate(p) for p in plan])


def same_plan(a, b):
    return len(a) == len(b) and all(len(p) == len(q) and all(np.array_equal(x, y) for x, y in zip(p, q))
                                    for p, q in zip(a, b))


def random_samples(lengths, seed=0, vocab=20):
    """Samples like Eq. 7's: an unsupervised first token, then supervised tokens."""
    rng = np.random.default_rng(seed)
    ids, labels = [], []
    for n in lengths:
        x = rng.integers(4, vocab, size=n).astype(np.int64)
        y = x.copy()
        y[0] = IGNORE
        ids.append(x)
        labels.append(y)
    return Samples(ids, labels, np.arange(len(lengths), dtype=np.int64))


def tiny_llama(attn="sdpa", vocab=20, seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2)
    cfg._attn_implementation = attn
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).eval()
    assert model.config._attn_implementation == attn
    return model


# -- config -------------------------------------------------------------------------------------------
def test_batching_is_neutral_at_its_default_and_pack_length_is_checked():
    assert "batching" not in canonical(tiny_cfg()) and "pack_length" not in canonical(tiny_cfg())
    assert canonical(tiny_cfg(batching="bucket"))["batching"] == "bucket"
    assert canonical(tiny_cfg(batching="pack", pack_length=64))["pack_length"] == 64
    with pytest.raises(ConfigError, match="lm.pack_length .* applies to lm.batching 'pack' only"):
        tiny_cfg(pack_length=64)
    with pytest.raises(ConfigError, match="lm.pack_length must be > 0"):
        tiny_cfg(batching="pack", pack_length=0)


# -- plans --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,b,g,w", [(10, 2, 2, 1), (9, 2, 2, 1), (37, 4, 1, 2), (50, 3, 2, 2)])
def test_pad_plan_is_the_old_plan(n, b, g, w):
    for epoch in range(3):
        assert same_plan(epoch_plan(n, 5, epoch, b, g, w), old_epoch_plan(n, 5, epoch, b, g, w))


def test_the_default_trainer_plans_and_collates_as_before(tmp_path):
    j = job(tmp_path, "pad", tiny_cfg())
    t = j.trainer
    assert t.cfg.batching == "pad"
    for epoch in range(2):
        plan = t.plan(epoch)
        assert same_plan(plan, old_epoch_plan(len(j.train), 7, epoch, 8, 1, 1))
        for part in plan[0]:
            got, want = t.collate(part), collate(j.train, part, t.pad_id, torch.device("cpu"))
            assert len(got) == 3 and all(torch.equal(a, b) for a, b in zip(got, want))


def test_bucket_plan_covers_every_sample_once_with_batches_of_similar_length():
    lengths = np.random.default_rng(0).integers(2, 40, size=103)
    a = bucket_plan(lengths, seed=3, epoch=0, batch_size=8, grad_accum=1, world=1)
    assert sorted(flat(a).tolist()) == list(range(103))
    assert [len(p[0]) for p in a].count(8) == 12
    # consecutive in length order: a batch's lengths span no more than the gap to the next batch
    spans = sorted((lengths[p[0]].min(), lengths[p[0]].max()) for p in a)
    assert all(hi <= lo2 for (_, hi), (lo2, _) in zip(spans, spans[1:]))
    padded = sum(len(p[0]) * lengths[p[0]].max() for p in a)
    padded_pad = sum(len(p[0]) * lengths[p[0]].max() for p in epoch_plan(103, 3, 0, 8, 1, 1))
    assert padded < 0.7 * padded_pad
    # a function of (seed, epoch): same again, different next epoch (batch order and ties)
    assert same_plan(a, bucket_plan(lengths, 3, 0, 8, 1, 1))
    assert not same_plan(a, bucket_plan(lengths, 3, 1, 8, 1, 1))
    assert not same_plan(a, bucket_plan(lengths, 4, 0, 8, 1, 1))
    # grad accumulation / processes: global batches split into parts, still every sample once
    b = bucket_plan(lengths, 3, 0, 4, 2, 2)
    assert all(len(p) == 4 for p in b) and sorted(flat(b).tolist()) == list(range(103))


def test_pack_rows_first_fit_decreasing():
    rows = pack_rows(np.array([5, 9, 3, 7, 1, 4]), capacity=10)
    assert [r.tolist() for r in rows] == [[1, 4], [3, 2], [0, 5]]  # 9+1, 7+3, 5+4
    assert [r.tolist() for r in pack_rows(np.array([10, 10]), 10)] == [[0], [1]]
    with pytest.raises(ValueError, match="11 tokens does not fit a row of 10"):
        pack_rows(np.array([3, 11]), 10)


def test_pack_trainer_uses_pad_batches_and_covers_every_sample_once(tmp_path):
    j = job(tmp_path, "pack", tiny_cfg(batching="pack"))
    t = j.trainer
    assert t.pack_length == int(j.train.lengths.max())
    for epoch in range(2):
        plan = t.plan(epoch)
        assert same_plan(plan, old_epoch_plan(len(j.train), 7, epoch, 8, 1, 1))
        seen = []
        for p in plan:
            batch = t.collate(p[0])
            for r in range(batch.input_ids.shape[0]):  # recover each sample from its segment
                seg = batch.segment_ids[r]
                for k in range(int(seg.max()) + 1):
                    ids = batch.input_ids[r][seg == k].numpy()
                    hits = [i for i in p[0] if np.array_equal(j.train.input_ids[i], ids)]
                    assert hits
                    seen.append(len(hits))
        assert len(seen) == len(j.train)
    with pytest.raises(ConfigError, match=r"lm.pack_length \(5\) is shorter than the longest training sample"):
        job(tmp_path, "short", tiny_cfg(batching="pack", pack_length=5))


def test_collate_packed_rows_positions_segments_and_labels():
    s = random_samples([4, 3, 6, 2])
    b = collate_packed(s, np.array([0, 1, 2, 3]), pad_id=0, device=torch.device("cpu"), capacity=7)
    # FFD on lengths [4, 3, 6, 2] with capacity 7: rows [6], [4, 3], [2] -> T = 7
    assert b.input_ids.shape == (3, 7) and b.attention_mask is None
    assert b.position_ids.tolist() == [[0, 1, 2, 3, 4, 5, 0], [0, 1, 2, 3, 0, 1, 2], [0, 1, 0, 1, 2, 3, 4]]
    assert b.segment_ids.tolist() == [[0, 0, 0, 0, 0, 0, -1], [0, 0, 0, 0, 1, 1, 1], [0, 0, -1, -1, -1, -1, -1]]
    assert b.input_ids[1].tolist() == s.input_ids[0].tolist() + s.input_ids[1].tolist()
    assert b.labels[1].tolist() == [IGNORE] + s.labels[0][1:].tolist() + [IGNORE] + s.labels[1][1:].tolist()
    assert b.input_ids[2, 2:].tolist() == [0] * 5 and b.labels[2, 2:].tolist() == [IGNORE] * 5
    # supervised positions: the same count as the samples'
    assert int((b.labels[:, 1:] != IGNORE).sum()) == int(s.n_supervised.sum())


def test_block_causal_mask():
    seg = torch.tensor([[0, 0, 1, 1, -1]])
    m = block_causal_mask(seg, "sdpa")
    assert m.shape == (1, 1, 5, 5) and m.dtype == torch.bool
    assert m[0, 0].int().tolist() == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 1, 1, 0],
                                      [0, 0, 0, 0, 1]]
    e = block_causal_mask(seg, "eager")
    assert e.dtype == torch.float32 and torch.equal(e == 0, m)
    assert float(e.min()) == torch.finfo(torch.float32).min
    with pytest.raises(ConfigError, match="needs sdpa or eager attention"):
        block_causal_mask(seg, "flash_attention_2")


# -- exact equivalence ---------------------------------------------------------------------------------
def per_token_nll(loss_mod, batch):
    logits, targets = loss_mod.supervised_logits(*batch)
    return torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")


@pytest.mark.parametrize("attn,fast", [("sdpa", True), ("eager", True), ("sdpa", False)])
def test_packed_forward_equals_separate_forwards(attn, fast):
    lengths = [9, 3, 12, 5, 2, 7, 4]
    s = random_samples(lengths, seed=1)
    model = tiny_llama(attn)
    loss_mod = SupervisedNLL(model)
    loss_mod.fast = fast  # False: through the model's own forward (architectures outside PLAIN_HEAD_ARCHS)
    idx = np.arange(len(lengths))
    with torch.no_grad():
        packed = collate_packed(s, idx, 0, torch.device("cpu"), capacity=16)
        assert packed.input_ids.shape[0] < len(lengths)
        # per sample on its own (no padding at all): the reference per-token NLL, by sample
        alone = {i: per_token_nll(loss_mod, collate(s, np.array([i]), 0, torch.device("cpu"))) for i in idx}
        got = per_token_nll(loss_mod, packed)
        # packed order: row by row, samples in row order
        rows = [int(i) for r in pack_rows(np.array(lengths), 16) for i in r]
        want = torch.cat([alone[i] for i in rows])
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5, rtol=0)
        # the summed loss (the trainer's objective) equals pad's for the same samples
        padded = collate(s, idx, 0, torch.device("cpu"))
        assert torch.allclose(loss_mod(*packed), loss_mod(*padded), atol=1e-4, rtol=0)
        # and the full-vocabulary logits of every real token equal the separate forward's
        mask = block_causal_mask(packed.segment_ids, attn)
        full = model(input_ids=packed.input_ids, attention_mask=mask, position_ids=packed.position_ids).logits
        for r, row in enumerate(pack_rows(np.array(lengths), 16)):
            t = 0
            for i in row:
                ref = model(input_ids=torch.from_numpy(s.input_ids[i])[None]).logits[0]
                assert torch.allclose(full[r, t:t + lengths[i]], ref, atol=1e-5, rtol=0)
                t += lengths[i]


def test_no_token_attends_across_samples():
    s = random_samples([6, 5, 4], seed=2)
    model = tiny_llama()
    idx = np.arange(3)
    with torch.no_grad():
        b = collate_packed(s, idx, 0, torch.device("cpu"), capacity=16)  # one row: 6 | 5 | 4
        assert b.input_ids.shape[0] == 1
        mask = block_causal_mask(b.segment_ids, "sdpa")
        base = model(input_ids=b.input_ids, attention_mask=mask, position_ids=b.position_ids).logits[0]
        for k, (lo, hi) in enumerate([(0, 6), (6, 11), (11, 15)]):
            ids = b.input_ids.clone()
            ids[0, lo:hi] = (ids[0, lo:hi] + 3) % 20  # perturb sample k only
            out = model(input_ids=ids, attention_mask=mask, position_ids=b.position_ids).logits[0]
            others = torch.ones(15, dtype=torch.bool)
            others[lo:hi] = False
            assert torch.equal(out[others], base[others])  # exactly: nothing of sample k reaches them
            assert not torch.allclose(out[lo:hi], base[lo:hi])


# -- training -------------------------------------------------------------------------------------------
def test_pack_trains_the_same_run_as_pad_and_bucket_runs(tmp_path):
    runs = {m: job(tmp_path, m, tiny_cfg(batching=m, epochs=2)).trainer.fit(resume=False)
            for m in ("pad", "pack", "bucket")}
    pad, pack = runs["pad"].state.steps, runs["pack"].state.steps
    assert [r["supervised_tokens"] for r in pad] == [r["supervised_tokens"] for r in pack]
    assert [r["tokens"] for r in pad] == [r["tokens"] for r in pack]
    # same batches, same normaliser: the same losses up to rounding
    assert np.allclose([r["loss"] for r in pad], [r["loss"] for r in pack], atol=1e-4, rtol=0)
    # bucket: other batches, every sample once per epoch (tokens per epoch equal pad's)
    bucket = runs["bucket"].state.steps
    for e in range(2):
        assert sum(r["tokens"] for r in bucket if r["epoch"] == e) == sum(r["tokens"] for r in pad if r["epoch"] == e)
    assert runs["bucket"].state.evals[-1]["val_loss"] < runs["bucket"].state.evals[0]["val_loss"] + 1.0


def test_pack_with_a_lora_backbone_matches_pad_and_flash_attention_is_refused(tmp_path):
    ckpt = make_standin_checkpoint(tmp_path / "standin")
    base = dict(backbone=f"path:{ckpt}", epochs=1, batch_size=4, lr=1e-3, warmup_ratio=0.0, max_history=4,
                precision="fp32", progress=False, num_threads=1, max_steps=3,
                lora=LoRASettings(dropout=0.0))  # no dropout: its draws depend on the batch layout

    pad = job(tmp_path, "lpad", LMConfig(**base)).trainer.fit(resume=False)
    pack = job(tmp_path, "lpack", LMConfig(**base, batching="pack")).trainer.fit(resume=False)
    assert np.allclose([r["loss"] for r in pad.state.steps], [r["loss"] for r in pack.state.steps], atol=1e-4, rtol=0)
    j = job(tmp_path, "lflash", LMConfig(**base, batching="pack"))
    model = j.built.model
    check_packable(model)
    from agrec.lm.finetune import unwrap

    unwrap(model).config._attn_implementation = "flash_attention_2"
    with pytest.raises(ConfigError, match="flash-attention kernels reject 4-D masks"):
        check_packable(model)


@pytest.mark.parametrize("batching", ["bucket", "pack"])
def test_bucket_and_pack_runs_resume_exactly(tmp_path, batching):
    from agrec.lm.trainer import TrainingInterrupted

    cfg = tiny_cfg(epochs=2, batching=batching)
    full = job(tmp_path, "full", cfg).trainer.fit()
    broken = job(tmp_path, "broken", cfg)
    broken.trainer.stop_after_step = len(broken.trainer.plan(0)) + 1
    with pytest.raises(TrainingInterrupted):
        broken.trainer.fit()
    resumed = job(tmp_path, "broken", cfg).trainer.fit(resume=True)
    strip = lambda r: [{k: v for k, v in x.items() if k != "train_time_s"} for x in r.state.steps]  # noqa: E731
    assert strip(resumed) == strip(full) and resumed.state.evals == full.state.evals
