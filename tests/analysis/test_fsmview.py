import math

import numpy as np

from agrec.analysis.fsmview import beam_states, build_user_fsm, fsm_tree, fsm_tree_figure
from agrec.decode.trie import ItemTrie

# 5 items over 2 levels (token ids): first codes 10/11, second codes 20..22
TOKENS = np.array([[10, 20], [10, 21], [11, 20], [11, 22], [10, 22]])
TITLES = [f"T{i}" for i in range(5)]


def test_tree_of_a_hand_built_fsm():
    trie = ItemTrie.build(TOKENS)
    # top-3: items 1, 0, 3 with scores ln 3, ln 1, ln 2 -> w = 3/6, 1/6, 2/6 (tau = 1, agg = sum)
    fsm = build_user_fsm(trie, [1, 0, 3], [math.log(3), 0.0, math.log(2)])
    tree = fsm_tree(fsm, TITLES, {10: "a0", 11: "a1", 20: "b0", 21: "b1", 22: "b2"}, top_items=[1, 0, 3])
    assert tree["prefix"].tolist() == [(10,), (11,), (10, 20), (10, 21), (11, 22)]
    assert tree["token"].tolist() == ["a0", "a1", "b0", "b1", "b2"]
    np.testing.assert_allclose(tree["weight"], [4 / 6, 2 / 6, 1 / 6, 3 / 6, 2 / 6], rtol=1e-6)
    # p_G: root state -> 4/6, 2/6; state (10) -> item 0 (1/6) vs item 1 (3/6) normalised: 1/4, 3/4
    np.testing.assert_allclose(tree["p_G"], [4 / 6, 2 / 6, 1 / 4, 3 / 4, 1.0], rtol=1e-5)
    assert tree["items"].tolist() == [2, 1, 1, 1, 1]
    assert tree["item"].tolist() == [-1, -1, 0, 1, 3]
    assert tree["title"].tolist() == ["", "", "T0", "T1", "T3"]


def test_beam_states():
    trie = ItemTrie.build(TOKENS)
    fsm = build_user_fsm(trie, [1, 0, 3], [1.0, 0.5, 0.2])
    tree = fsm_tree(fsm, TITLES, top_items=[1, 0, 3])
    beams = np.array([[10, 21], [10, 22], [11, 20], [11, 22]])
    st = beam_states(tree, beams, {10: "a0", 11: "a1", 20: "b0", 21: "b1", 22: "b2"})
    assert st["on_levels"].tolist() == [2, 1, 1, 2]
    assert st["state"].tolist() == ["a0b1", "a0", "a1", "a1b2"]
    assert st["status"].tolist() == ["a top-n item", "left at level 2", "left at level 2", "a top-n item"]
    assert beam_states(tree, np.array([[12, 20]]))["status"].tolist() == ["never on (left at level 1)"]
    # the drawing: one edge per tree row labelled with its p_G, one label per item leaf, and the beams counted
    # where they ended (a tree and states named with the same token names)
    names = {10: "a0", 11: "a1", 20: "b0", 21: "b1", 22: "b2"}
    named = fsm_tree(fsm, TITLES, names, top_items=[1, 0, 3])
    fig = fsm_tree_figure(named, beam_states(named, beams, names))
    ax, = fig.axes
    assert len(ax.get_lines()) == len(named) + 1                       # the edges and the root dot
    texts = [t.get_text() for t in ax.texts]
    assert [t for t in texts if " p=" in t] == [f"{r.token} p={r.p_G:.2f}" for r in named.itertuples()]
    w = named.set_index("title")["weight"]
    assert [t for t in texts if "w=" in t] == [f"T0  w={w['T0']:.2f}", f"T1  w={w['T1']:.2f}  [1 beam]",
                                               f"T3  w={w['T3']:.2f}  [1 beam]"]
    assert sorted(t for t in texts if "left here" in t) == ["[1 beam(s) left here]"] * 2
