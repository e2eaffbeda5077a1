import math

import numpy as np
import torch

from agrec.analysis.casestudy import (beams_table, gnn_top_table, history_table, pick_case_user, token_labels,
                                      trace_table)
from agrec.decode.beam import DecodeResult, DecodeTrace

TITLES = [f"T{i}" for i in range(6)]
NAN = float("nan")


def hand_result() -> DecodeResult:
    # one user, 3 slots (the last missing), 2 levels; beam 1 left the FSM after its first token
    tr = DecodeTrace(tokens=torch.tensor([[[10, 20], [11, 21], [0, 0]]]),
                     p_llm=torch.tensor([[[0.5, 0.4], [0.2, 0.9], [0.0, 0.0]]]),
                     p_g=torch.tensor([[[0.7, 1.0], [0.3, NAN], [NAN, NAN]]]),
                     p_hat=torch.tensor([[[0.6, 0.7], [0.25, 0.9], [0.0, 0.0]]]),
                     on=torch.tensor([[[True, True], [True, False], [False, False]]]))
    return DecodeResult(items=torch.tensor([[4, 2, -1]]),
                        scores=torch.tensor([[math.log(0.42), math.log(0.225), float("-inf")]]), trace=tr)


def test_trace_table_is_the_trace():
    labels = {10: "<a_0>", 20: "<b_0>", 11: "<a_1>", 21: "<b_1>"}
    df = trace_table(hand_result(), 0, TITLES, target=2, labels=labels)
    assert df["rank"].tolist() == [1, 1, 2, 2]
    assert df["item"].tolist() == [4, 4, 2, 2]
    assert df["token"].tolist() == ["<a_0>", "<b_0>", "<a_1>", "<b_1>"]
    np.testing.assert_allclose(df["p_LLM"], [0.5, 0.4, 0.2, 0.9], rtol=1e-6)
    np.testing.assert_allclose(df["p_hat"], [0.6, 0.7, 0.25, 0.9], rtol=1e-6)
    assert df["p_G"].iloc[:3].round(6).tolist() == [0.7, 1.0, 0.3] and np.isnan(df["p_G"].iloc[3])
    assert df["on FSM"].tolist() == [True, True, True, False]
    assert df["hit"].tolist() == [False, False, True, True]


def test_beams_table_marks_hit_and_fsm_steps():
    df = beams_table(hand_result(), 0, TITLES, target=2, labels={10: "a", 20: "b", 11: "c", 21: "d"})
    assert df[["rank", "item", "title", "code", "on FSM", "hit"]].values.tolist() == [
        [1, 4, "T4", "ab", "2/2", False], [2, 2, "T2", "cd", "1/2", True]]
    np.testing.assert_allclose(df["score"], [math.log(0.42), math.log(0.225)], rtol=1e-6)


def test_gnn_top_table_weights_are_softmax():
    df = gnn_top_table([3, 1, -1], [2.0, 0.0, float("-inf")], TITLES, target=1, tau=1.0)
    assert df["item"].tolist() == [3, 1] and df["hit"].tolist() == [False, True]
    e = math.exp(2.0)
    np.testing.assert_allclose(df["weight"], [e / (e + 1), 1 / (e + 1)])


def test_history_and_case_user():
    assert history_table([5, 0, 3], TITLES, last=2)[["position", "title"]].values.tolist() == [[2, "T0"], [3, "T3"]]
    assert pick_case_user(np.array([1, 1, 0], bool), np.array([1, 0, 0], bool)) == 1
    assert pick_case_user(np.array([0, 1, 0], bool), np.array([1, 1, 0], bool)) == 1
    assert pick_case_user(np.zeros(3, bool), np.zeros(3, bool)) == 0
    assert pick_case_user(np.zeros(3, bool), np.zeros(3, bool), preferred=2) == 2


def test_token_labels_from_codes():
    ids = np.array([[5, 9], [6, 9]])
    assert token_labels(ids, [["<a_0>", "<b_0>"], ["<a_1>", "<b_0>"]]) == {5: "<a_0>", 9: "<b_0>", 6: "<a_1>"}
    assert token_labels(ids) == {5: "L1:5", 9: "L2:9", 6: "L1:6"}
