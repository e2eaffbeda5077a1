"""The teacher's targets computed once per row (agrec/lm/target_cache.py, ``lm.distill_cache``): with a teacher whose
scores of a row do not depend on the other rows of its batch, the cached targets, filled from other batches, are the
uncached ones bit for bit, off-path prefixes and attention included; training with the cache is training without it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agrec.canonical import keyed
from agrec.errors import ConfigError
from agrec.lm.config import LMConfig
from agrec.lm.distill import CodeDistiller

from lm_helpers import CODES, job, losses, tiny_cfg
from test_distill import toy_teacher

RNG = np.random.default_rng(3)
# 40 items of 3 levels (codebooks 3, 4, 5); in a vocabulary of 4 specials their codes are ids 4-6, 7-10, 11-15
CODES3 = RNG.permutation(np.array([(a, b, c) for a in range(3) for b in range(4) for c in range(5)]))[:40]
TOKENS = torch.from_numpy(CODES3 + np.array([4, 7, 11]))
V = 16
SCORES = torch.tensor(RNG.normal(size=(40, 40)) * 2.0, dtype=torch.float32)


def row_teacher(items: torch.Tensor, rows: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Scores after items 0..position of a row: the sum of one random vector per item read. Each row's sum runs
    over its own items in order and adds only exact zeros for padding, so it is the same in any batch."""
    K = items.shape[1]
    read = (torch.arange(K)[None, :] <= positions[:, None]) & (items[rows] >= 0)
    vec = SCORES[items[rows].clamp(min=0)] * read[..., None]
    return vec.sum(1)


SEQS = [[3, 17, 0, 39, 25], [8, 30, 11], [5], [12, 12, 7, 33], [21, 2]]


def batch(seqs: list[list[int]], unsupervised: int | None = None):
    """Right-padded rows of ``<s>`` + each sequence's codes, every code supervised (Eq. 7), except the codes of
    item ``unsupervised`` (an index into each row) where given."""
    T = 1 + 3 * max(map(len, seqs))
    ids = torch.zeros(len(seqs), T, dtype=torch.long)
    mask = torch.zeros(len(seqs), T, dtype=torch.long)
    for r, s in enumerate(seqs):
        row = [1] + [int(t) for i in s for t in TOKENS[i]]
        ids[r, : len(row)], mask[r, : len(row)] = torch.tensor(row), 1
    labels = torch.where(mask.bool(), ids, torch.full_like(ids, -100))
    labels[:, 0] = -100
    if unsupervised is not None:
        labels[:, 1 + 3 * unsupervised : 4 + 3 * unsupervised] = -100
    return ids, mask, labels


def assert_same(got, want) -> None:
    has, soft, br = got
    assert torch.equal(has, want[0]) and torch.equal(soft, want[1])
    assert (br is None) == (want[2] is None)
    if br is not None:
        for name, a, b in zip(br._fields, br, want[2], strict=True):
            assert a.dtype == b.dtype and torch.equal(a, b), name


@pytest.mark.parametrize("branch_tokens", [0, 6])
def test_cached_targets_filled_from_other_batches_are_the_uncached_ones_bit_for_bit(branch_tokens):
    plain = CodeDistiller(row_teacher, TOKENS, V, 0.5, 0.7, branch_tokens=branch_tokens)
    cached = CodeDistiller(row_teacher, TOKENS, V, 0.5, 0.7, branch_tokens=branch_tokens, cache=True)
    # filled in two batches of other compositions and paddings, rows in another order
    assert cached.fill(*batch([SEQS[3], SEQS[0]])) == 2
    assert cached.fill(*batch([SEQS[4], SEQS[2], SEQS[1], SEQS[0]])) == 3  # row 0 is cached already
    assert len(cached.cache) == 5 and cached.cache_nbytes > 0
    want = plain.targets(*batch(SEQS), n_logits=V + 3)  # an LM head wider than the vocabulary
    assert want[2] is None or len(want[2].rows) > 0
    assert_same(cached.targets(*batch(SEQS), n_logits=V + 3), want)
    assert len(cached.cache) == 5  # read, not recomputed
    # a batch with rows it has not seen computes them (together) and keeps them
    more = [SEQS[1], [9, 10, 11, 12], SEQS[4], [13, 14]]
    assert_same(cached.targets(*batch(more), n_logits=V), plain.targets(*batch(more), n_logits=V))
    assert len(cached.cache) == 7


def test_a_row_is_keyed_by_its_supervision_too_and_a_batch_without_teacher_is_as_without_the_cache():
    plain = CodeDistiller(row_teacher, TOKENS, V, 0.5, branch_tokens=4)
    cached = CodeDistiller(row_teacher, TOKENS, V, 0.5, branch_tokens=4, cache=True)
    # the same tokens with item 1's codes unsupervised: another row (no targets at those positions)
    for unsup in (None, 1):
        assert_same(
            cached.targets(*batch(SEQS[:2], unsup), n_logits=V), plain.targets(*batch(SEQS[:2], unsup), n_logits=V)
        )
    assert len(cached.cache) == 4
    # one item per row: nothing for the teacher to read, as without the cache (no prefixes at all)
    alone = batch([[5], [7]])
    got = cached.targets(*alone, n_logits=V)
    assert got[2] is None and got[1].shape == (0, V) and not bool(got[0].any())
    assert_same(got, plain.targets(*alone, n_logits=V))
    with pytest.raises(ValueError, match="keeps no cache"):
        plain.fill(*alone)


def test_training_with_the_cache_is_training_without_it_and_resumes_exactly(tmp_path):
    teacher = toy_teacher(CODES.n_items)
    for b in (0, 3):
        base = tiny_cfg(distill_teacher="sasrec", distill_branch_tokens=b)
        without = job(tmp_path, f"without{b}", base, teacher=teacher).trainer.fit()
        cfg = tiny_cfg(distill_teacher="sasrec", distill_branch_tokens=b, distill_cache=True)
        logs: list[str] = []
        j = job(tmp_path, f"with{b}", cfg, teacher=teacher)
        j.trainer.log = logs.append
        res = j.trainer.fit()
        assert losses(res) == losses(without)
        distinct = len(j.trainer.distiller.cache)
        assert distinct < len(j.trainer.train)  # the toy sequences repeat windows: one entry each
        want = f"teacher targets of {len(j.trainer.train):,} training rows ({distinct:,} distinct)"
        assert any(want in x for x in logs), (want, logs)
    broken = job(tmp_path, "broken", cfg, teacher=teacher)
    broken.trainer.stop_after_step = len(broken.trainer.plan(0)) + 1
    from agrec.lm.trainer import TrainingInterrupted

    with pytest.raises(TrainingInterrupted):
        broken.trainer.fit()
    assert losses(job(tmp_path, "broken", cfg, teacher=teacher).trainer.fit(resume=True)) == losses(res)


def test_the_cache_needs_a_teacher_and_is_keyed_only_when_on():
    with pytest.raises(ConfigError, match=r"lm.distill_cache applies with a teacher only"):
        LMConfig(distill_cache=True)
    assert "distill_cache" not in keyed(LMConfig(distill_teacher="sasrec"))
    assert keyed(LMConfig(distill_teacher="sasrec", distill_cache=True))["distill_cache"] is True


def test_codes_of_a_vocabulary_beyond_int16_are_kept_exactly():
    # the sparse columns are int16 while the vocabulary fits; a larger one keeps int32 columns
    big = torch.tensor([[40000, 40002], [40000, 40003], [40001, 40002]])

    def teacher(items, rows, positions):  # 3 items, a row's scores from its own items only
        return SCORES[:3, :3][items[rows, positions].clamp(min=0)]

    d = CodeDistiller(teacher, big, 40004, 0.5, branch_tokens=2, cache=True)
    plain = CodeDistiller(teacher, big, 40004, 0.5, branch_tokens=2)
    ids = torch.tensor([[1, 40000, 40002, 40001, 40002, 40000, 40003]])
    labels = ids.clone()
    labels[0, 0] = -100
    assert_same(d.targets(ids, None, labels, n_logits=40004), plain.targets(ids, None, labels, n_logits=40004))
    row = next(iter(d.cache.values()))
    assert row.cols.dtype == np.int32 and int(row.cols.max()) >= 40002 and len(row.ids) == 2
