import numpy as np
import pytest
import torch

from agrec.decode import ItemTrie
from agrec.errors import AgrecError
from agrec.semantic_ids import CodeTable

# items 0..3; sorted lexicographically they are 3, 2, 1, 0
TOKENS = [[5, 7, 9], [5, 7, 8], [5, 6, 9], [4, 7, 9]]


def test_hand_built_trie_layout():
    t = ItemTrie.build(np.array(TOKENS))
    # root 0; depth 1: (4)=1 (5)=2; depth 2: (4,7)=3 (5,6)=4 (5,7)=5; leaves (4,7,9)=6 (5,6,9)=7 (5,7,8)=8 (5,7,9)=9
    assert t.n_nodes == 10 and t.n_items == 4 and t.n_levels == 3
    assert t.path_nodes.tolist() == [[0, 2, 5, 9], [0, 2, 5, 8], [0, 2, 4, 7], [0, 1, 3, 6]]
    assert t.node_token.tolist() == [-1, 4, 5, 7, 6, 7, 9, 9, 8, 9]
    assert t.node_parent.tolist() == [-1, 0, 0, 1, 2, 2, 3, 4, 5, 5]
    assert t.node_depth.tolist() == [0, 1, 1, 2, 2, 2, 3, 3, 3, 3]
    assert t.first_child.tolist()[:6] == [1, 3, 4, 6, 7, 8]
    assert t.n_children.tolist() == [2, 1, 2, 1, 1, 2, 0, 0, 0, 0]
    assert t.leaf_item.tolist() == [-1] * 6 + [3, 2, 1, 0]
    assert t.leaf_count.tolist() == [4, 1, 3, 1, 1, 2, 1, 1, 1, 1]
    assert t.max_children.tolist() == [2, 2, 2]
    assert t.code_tokens.tolist() == [4, 5, 6, 7, 8, 9]


def test_children_gather_pads_and_sorts_by_token():
    t = ItemTrie.build(np.array(TOKENS))
    child, tok, valid = t.children(torch.tensor([[0, 1], [5, 4]]), 2)
    assert child.tolist() == [[[1, 2], [3, 0]], [[8, 9], [7, 0]]]
    assert tok.tolist() == [[[4, 5], [7, 0]], [[8, 9], [9, 0]]]
    assert valid.tolist() == [[[True, True], [True, False]], [[True, True], [True, False]]]


def test_prefix_queries():
    t = ItemTrie.build(np.array(TOKENS))
    assert t.allowed_tokens([]) == [4, 5]
    assert t.allowed_tokens([5]) == [6, 7]
    assert t.allowed_tokens([5, 7]) == [8, 9]
    assert t.allowed_tokens([5, 7, 9]) == []           # complete item
    assert t.allowed_tokens([4, 6]) == []              # no item starts with it
    assert t.node_of([5, 6, 9]) == 7 and t.node_of([9]) == -1


def test_remaining_counts_after_exclusion():
    t = ItemTrie.build(np.array(TOKENS))
    rem = t.remaining_counts([np.array([0]), [0, 1, 1], None])
    assert rem[0].tolist() == [3, 1, 2, 1, 1, 1, 1, 1, 1, 0]
    assert rem[1].tolist() == [2, 1, 1, 1, 1, 0, 1, 1, 0, 0]   # (5,7) is now a dead end
    assert rem[2].tolist() == t.leaf_count.tolist()
    with pytest.raises(AgrecError, match=r"exclude\[0\]: item 4"):
        t.remaining_counts([[4]])


def test_bad_tables_are_refused():
    with pytest.raises(AgrecError, match="items 0 and 2 have the same code sequence"):
        ItemTrie.build(np.array([[1, 2], [1, 3], [1, 2]]))
    with pytest.raises(AgrecError, match="negative token id"):
        ItemTrie.build(np.array([[1, -2]]))
    with pytest.raises(AgrecError, match="non-empty"):
        ItemTrie.build(np.zeros((0, 3), dtype=np.int64))


def test_random_table_round_trip():
    rng = np.random.default_rng(3)
    tok = np.unique(rng.integers(10, 20, size=(300, 4)), axis=0)
    rng.shuffle(tok)
    t = ItemTrie.build(tok)
    for i in range(len(tok)):
        assert t.node_of(tok[i].tolist()) == int(t.path_nodes[i, -1])
        assert int(t.leaf_item[t.path_nodes[i, -1]]) == i
    # every node's children are exactly the next tokens of the items under it
    for i in range(0, len(tok), 17):
        for d in range(4):
            expect = sorted({int(r[d]) for r in tok if (r[:d] == tok[i, :d]).all()})
            assert t.allowed_tokens(tok[i, :d].tolist()) == expect


def test_from_code_table_with_a_vocabulary():
    table = CodeTable(codes=[[0, 1], [1, 1], [0, 0]], codebook_sizes=(2, 2))
    vocab = {tok: 10 + i for i, tok in enumerate(table.all_tokens())}   # <a_0>=10 <a_1>=11 <b_0>=12 <b_1>=13
    t = ItemTrie.from_code_table(table, vocab)
    assert t.item_tokens.tolist() == [[10, 13], [11, 13], [10, 12]]
    with pytest.raises(AgrecError, match="'<b_1>' is not in the tokenizer's vocabulary"):
        ItemTrie.from_code_table(table, {k: v for k, v in vocab.items() if k != "<b_1>"})
