import numpy as np

from agrec.decode.evaluate import build_inputs, choose
from agrec.decode.stage import slug
from agrec.data.split import LeaveOneOutSplit


def _point(alpha, tau, valid, test):
    return {"alpha": alpha, "tau": tau, "valid": {"NDCG@10": valid}, "test": {"NDCG@10": test}}


def test_choice_uses_validation_only_and_breaks_ties_towards_the_simpler_model():
    curve = [_point(0.0, 1.0, 0.10, 0.50), _point(0.3, 1.0, 0.12, 0.01), _point(0.5, 1.0, 0.12, 0.02),
             _point(0.3, 0.5, 0.12, 0.03)]
    best = choose(curve, "NDCG@10")
    # 0.12 is the best validation score; test scores (0.50 at alpha 0) are never looked at;
    # among the ties the smaller alpha (0.3) and then the smaller tau (0.5) win.
    assert (best["alpha"], best["tau"]) == (0.3, 0.5)


def test_inputs_exclude_the_history_seen_by_each_target():
    split = LeaveOneOutSplit(train=[np.array([1, 2]), np.array([3])], valid=np.array([4, 5]), test=np.array([6, 7]))
    prompt = lambda h: [100 + int(i) for i in h]  # noqa: E731
    v = build_inputs(split, prompt, "valid", np.array([0, 1]))
    t = build_inputs(split, prompt, "test", np.array([0, 1]))
    assert v.prompts == [[101, 102], [103]] and t.prompts == [[101, 102, 104], [103, 105]]
    assert [e.tolist() for e in t.exclude] == [[1, 2, 4], [3, 5]]
    assert v.targets.tolist() == [4, 5] and t.targets.tolist() == [6, 7]
    assert build_inputs(split, prompt, "test", np.array([1]), exclude_history=False).exclude is None


def test_row_slugs_are_file_names():
    assert slug("AGRec (lightgcn)") == "agrec_lightgcn"
    assert slug("released code: logit + last_token + max") == "released_code_logit_last_token_max"
    assert slug("w/o Graph") == "w_o_graph"
