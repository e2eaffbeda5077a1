import numpy as np
import pytest

from agrec.errors import AgrecError
from agrec.lm.backbones import build_tiny_tokenizer
from agrec.lm.random_ids import random_code_table
from agrec.lm.vocab import add_code_tokens, code_vocab, item_codes_text

from lm_helpers import TOY_CODES, standin_tokenizer


def test_code_tokens_follow_the_tiny_specials():
    tok = build_tiny_tokenizer()
    assert tok.convert_ids_to_tokens([0, 1, 2, 3]) == ["<pad>", "<s>", "</s>", "<unk>"]
    vocab = add_code_tokens(tok, TOY_CODES)
    assert vocab.added == 7 and len(tok) == 11
    assert [v.tolist() for v in vocab.level_token_ids] == [[4, 5, 6, 7], [8, 9, 10]]
    assert vocab.item_token_ids.tolist() == [[4, 9], [5, 10], [7, 8]]
    assert vocab.token_ids == list(range(4, 11))
    assert item_codes_text(vocab, tok, 2) == "<a_3><b_0>"


def test_code_tokens_are_atomic_in_a_pretrained_tokenizer():
    tok = standin_tokenizer()
    n = len(tok)
    vocab = add_code_tokens(tok, TOY_CODES)
    assert vocab.token_ids == list(range(n, n + 7))
    ids = tok("history: <a_1><b_2>, <a_3><b_0>", add_special_tokens=False)["input_ids"]
    a, b = vocab.item_token_ids[1].tolist(), vocab.item_token_ids[2].tolist()
    assert ids[-2:] == b and ids[ids.index(a[0]):ids.index(a[0]) + 2] == a
    assert sum(i >= n for i in ids) == 4  # exactly the four code tokens are new ids
    assert tok.decode(vocab.item_token_ids[1]) == "<a_1><b_2>"
    # adding again is a no-op: an extended tokenizer keeps its ids
    again = add_code_tokens(tok, TOY_CODES)
    assert again.added == 0 and again.token_ids == vocab.token_ids


def test_a_tokenizer_without_the_codes_is_refused():
    with pytest.raises(AgrecError, match=r"no token '<a_0>'"):
        code_vocab(build_tiny_tokenizer(), TOY_CODES)


def test_random_ids_are_seeded_and_collision_free():
    a = random_code_table(500, [4, 4], seed=3)   # 500 items in 16 combinations: many collisions
    b = random_code_table(500, [4, 4], seed=3)
    np.testing.assert_array_equal(a.codes, b.codes)
    assert a.n_levels == 3 and a.is_collision_free()
    # the de-dup level numbers the items of each group 0, 1, ...: its size is the largest group
    _, counts = np.unique(a.codes[:, :2], axis=0, return_counts=True)
    assert a.codebook_sizes == (4, 4, int(counts.max()))
    c = random_code_table(5, [1000, 1000], seed=0)  # no collision: no extra level
    assert c.n_levels == 2 and c.is_collision_free()
    assert not np.array_equal(random_code_table(500, [4, 4], seed=4).codes[:, :2], a.codes[:, :2])
