"""SASRec model: shapes, exact causality, padding invariance, the CE loss, training windows, config checks."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from agrec.baselines.config import SASRecConfig
from agrec.baselines.sasrec import SASRec
from agrec.baselines.trainer import target_batches, training_windows
from agrec.errors import ConfigError

N_ITEMS = 12


def model(**kw) -> SASRec:
    cfg = SASRecConfig(hidden_size=8, n_heads=2, inner_size=16, max_seq_length=6, progress=False, **kw)
    return SASRec(cfg, N_ITEMS, seed=3).eval()


def test_shapes_and_padding_row():
    m = model()
    seq, lengths = m.encode_histories([[0, 5, 11], [7], list(range(10))])
    # the last max_seq_length items, shifted by one (0 = padding), right-padded
    assert seq.tolist() == [[1, 6, 12, 0, 0, 0], [8, 0, 0, 0, 0, 0], [5, 6, 7, 8, 9, 10]]
    assert lengths.tolist() == [3, 1, 6]
    assert m(seq).shape == (3, 6, 8)
    assert m.full_sort_predict(seq, lengths).shape == (3, N_ITEMS)
    assert torch.equal(m.item_embedding.weight[0], torch.zeros(8))
    with pytest.raises(ValueError, match="history 1 is empty"):
        m.encode_histories([[1], []])
    with pytest.raises(ValueError, match="holds item 12"):
        m.encode_histories([[12]])


def test_seed_fixes_the_initial_weights():
    a, b = model().state_dict(), model().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = SASRec(SASRecConfig(hidden_size=8, inner_size=16, max_seq_length=6), N_ITEMS, seed=4).state_dict()
    assert not torch.equal(a["item_embedding.weight"], c["item_embedding.weight"])


def test_future_items_do_not_change_earlier_positions_exactly():
    m = model()
    seq = torch.tensor([[3, 4, 5, 6, 7, 8]])
    other = seq.clone()
    other[0, 3:] = torch.tensor([12, 1, 2])
    h, g = m(seq), m(other)
    assert torch.equal(h[0, :3], g[0, :3])
    assert not torch.equal(h[0, 3], g[0, 3])


def test_padding_and_batch_mates_do_not_change_a_users_scores():
    m = model()
    alone_seq, alone_len = m.encode_histories([[2, 3, 4]])
    batch_seq, batch_len = m.encode_histories([[2, 3, 4], [1, 2, 3, 4, 5, 6, 7, 8]])  # padded to 6
    assert batch_seq.shape[1] == 6
    alone = m.full_sort_predict(alone_seq, alone_len)[0]
    batched = m.full_sort_predict(batch_seq, batch_len)[0]
    torch.testing.assert_close(batched, alone, rtol=1e-6, atol=1e-6)
    # what sits in the padding positions is never seen by real positions
    junk = batch_seq.clone()
    junk[0, 3:] = 9
    assert torch.equal(m(junk)[0, :3], m(batch_seq)[0, :3])


def test_loss_is_full_softmax_cross_entropy_over_the_trained_positions():
    m = model(hidden_dropout_prob=0.0, attn_dropout_prob=0.0)
    seq = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    targets = torch.tensor([[1, 2, -1, -1], [-1, 7, -1, -1]])
    hidden = m(seq)
    logits = torch.stack([hidden[0, 0], hidden[0, 1], hidden[1, 1]]) @ m.item_embedding.weight[1:].T
    expected = F.cross_entropy(logits, torch.tensor([1, 2, 7]))
    assert logits.shape == (3, N_ITEMS)  # every real item, not the padding row
    torch.testing.assert_close(m.calculate_loss(seq, targets), expected, rtol=0, atol=0)
    # and by hand: mean of -log softmax at the target
    by_hand = -torch.log_softmax(logits, 1)[torch.arange(3), torch.tensor([1, 2, 7])].mean()
    torch.testing.assert_close(m.calculate_loss(seq, targets), by_hand, rtol=1e-6, atol=1e-6)


def prefix_pairs(train, L):
    """RecBole's augmentation: every prefix s[:j] (last L items) predicts s[j]."""
    return sorted((tuple(s[max(0, j - L):j]), int(s[j])) for s in train for j in range(1, len(s)))


def window_pairs(w):
    """(context, target) of every trained position of the windows, in project item ids."""
    out = []
    for inp, tgt in zip(w.inputs, w.targets):
        for p in np.flatnonzero(tgt >= 0):
            ctx = tuple(int(x) - 1 for x in inp[:p + 1])
            out.append((ctx, int(tgt[p])))
    return out


@pytest.mark.parametrize("stride", [1, 2, 4])
def test_windows_train_each_target_once_with_recboles_context_at_stride_1(stride):
    rng = np.random.default_rng(0)
    L = 4
    train = [rng.integers(0, N_ITEMS, size=n) for n in (1, 2, 4, 5, 6, 11)]
    w = training_windows(train, L, stride)
    pairs = window_pairs(w)
    assert sorted(t for _, t in pairs) == sorted(int(s[j]) for s in train for j in range(1, len(s)))
    assert int(w.n_targets.sum()) == sum(len(s) - 1 for s in train)
    if stride == 1:
        assert sorted(pairs) == prefix_pairs(train, L)
    # each target is trained on the items just before it, at least L - stride + 1 of them (or all there are)
    for s in train:
        for j in range(1, len(s)):
            assert any(ctx == tuple(s[max(0, j - k):j]) and t == s[j]
                       for ctx, t in pairs for k in range(min(j, L - stride + 1), L + 1))


def test_batches_cover_every_window_once_with_about_batch_size_targets():
    train = [np.arange(n) % N_ITEMS for n in range(2, 30)]
    w = training_windows(train, 5, 2)
    groups = target_batches(w, 16, np.random.default_rng(1))
    assert sorted(np.concatenate(groups).tolist()) == list(range(len(w)))
    sizes = [int(w.n_targets[g].sum()) for g in groups]
    assert all(s < 16 + 5 for s in sizes) and sum(sizes) == int(w.n_targets.sum())
    again = target_batches(w, 16, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(groups, again))


def test_bucketed_batches_hold_windows_of_about_one_length():
    rng = np.random.default_rng(3)
    # Amazon-like: mostly short sequences, a few long ones
    n = np.where(rng.random(400) < 0.05, 40, rng.integers(3, 10, size=400))
    train = [np.arange(int(k)) % N_ITEMS for k in n]
    w = training_windows(train, 20, 20)
    lengths = (w.inputs > 0).sum(1)
    shuffled = target_batches(w, 32, np.random.default_rng(1))
    bucket = target_batches(w, 32, np.random.default_rng(1), "bucket")
    assert sorted(np.concatenate(bucket).tolist()) == list(range(len(w)))
    sizes = [int(w.n_targets[g].sum()) for g in bucket]  # the same grouping rule as shuffled batches
    assert all(s < 32 + 20 for s in sizes) and sum(sizes) == int(w.n_targets.sum())
    # inside a batch the windows are in length order, and the padded width (the longest window) shrinks
    assert all((np.diff(lengths[g]) >= 0).all() for g in bucket)
    width = lambda groups: sum(int(lengths[g].max()) * len(g) for g in groups)  # noqa: E731
    assert width(bucket) < 0.6 * width(shuffled)
    # the batches come in a shuffled order, the same for the same generator
    assert not all(lengths[a].max() <= lengths[b].max() for a, b in zip(bucket, bucket[1:]))
    again = target_batches(w, 32, np.random.default_rng(1), "bucket")
    assert all(np.array_equal(a, b) for a, b in zip(bucket, again))
    with pytest.raises(ValueError, match="batching must be"):
        target_batches(w, 32, np.random.default_rng(1), "sorted")


@pytest.mark.parametrize("key,value,match", [
    ("hidden_size", 0, "hidden_size must be > 0"),
    ("n_heads", 3, "divisible by n_heads"),
    ("hidden_dropout_prob", 1.0, r"hidden_dropout_prob must be in \[0, 1\)"),
    ("learning_rate", 0.0, "learning_rate must be > 0"),
    ("train_stride", 60, "train_stride"),
    ("batching", "sorted", "batching must be 'shuffle' or 'bucket'"),
    ("patience", 0, "patience must be > 0"),
    ("valid_metric", "MRR@10", "valid_metric"),
    ("device", "tpu", "device"),
])
def test_config_validation_names_the_key(key, value, match):
    with pytest.raises(ConfigError, match=rf"^baselines\.sasrec\..*{match}"):
        SASRecConfig(**{key: value})


def test_defaults_are_recboles():
    c = SASRecConfig()
    assert (c.hidden_size, c.n_layers, c.n_heads, c.inner_size) == (64, 2, 2, 256)
    assert (c.hidden_dropout_prob, c.attn_dropout_prob, c.max_seq_length, c.learning_rate) == (0.5, 0.5, 50, 1e-3)
    assert (c.layer_norm_eps, c.initializer_range, c.batch_size) == (1e-12, 0.02, 2048)
