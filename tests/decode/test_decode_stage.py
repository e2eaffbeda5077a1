import json

import numpy as np
import pytest

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


def test_results_json_round_trips_through_its_one_writer_and_reader(tmp_path):
    from agrec.decode.stage import RESULTS, RESULTS_FORMAT, DecodeReport, load_report
    from agrec.errors import AgrecError

    m = {"HR@10": 0.25, "NDCG@10": 0.125}
    rep = DecodeReport(
        rows=[{"name": "w/o Graph", "settings": {"alpha": 0.0}, "metrics": {"valid": m, "test": m}, "rankings": "x"}],
        curve=[{"alpha": 0.0, "tau": 1.0, "valid": m, "test": None}],
        chosen={"alpha": 0.0, "tau": 1.0, "valid": m},
        n_users=4, seconds=1.5, folder=tmp_path, n_valid_users=2,
        variants={"v": {"row": "AGRec [v]", "settings": {"top_n": 3}, "curve": [], "chosen": {"alpha": 0.1}}},
        selected={"row": "AGRec (selected)", "source": "w/o Graph", "valid": m},
        scorer_curves={"sasrec": []}, curve_rankings={"0,1": "w_o_graph"}, fusion={"weight": 0.5},
    )
    rep.save()
    d = json.loads((tmp_path / RESULTS).read_text())
    assert d["format"] == RESULTS_FORMAT == 1 and d["n_valid_users"] == 2 and d["fusion"] == {"weight": 0.5}
    assert load_report(tmp_path) == rep
    # an older file (no format) still reads; a newer format is refused by name
    del d["format"]
    (tmp_path / RESULTS).write_text(json.dumps(d))
    assert load_report(tmp_path).rows == rep.rows
    (tmp_path / RESULTS).write_text(json.dumps({**d, "format": 2}))
    with pytest.raises(AgrecError, match=r"decode results format 2 was written by a newer agrec \(this one reads up to 1\); upgrade agrec, or rerun the decode stage"):
        load_report(tmp_path)
    (tmp_path / RESULTS).write_text(json.dumps({**d, "format": True}))
    with pytest.raises(AgrecError, match=r"decode results format True is not a positive integer; rerun the decode stage"):
        load_report(tmp_path)


def test_rankings_round_trip_through_their_writer_and_reader(tmp_path):
    from agrec.decode.stage import load_rankings, save_rankings

    users, targets = np.array([0, 3]), np.array([7, 9])
    items, scores = np.array([[7, 1, 2], [4, 9, 5]]), np.array([[-0.5, -1.0, -2.0], [-0.1, -0.2, -0.3]])
    path = save_rankings(tmp_path, "AGRec (lightgcn)", "test", users, targets, items, scores)
    assert path == tmp_path / "rankings" / "agrec_lightgcn__test.npz"
    got = load_rankings(tmp_path, "AGRec (lightgcn)", "test")
    assert {k: v.tolist() for k, v in got.items()} == {"users": [0, 3], "targets": [7, 9], "items": items.tolist(),
                                                       "scores": scores.tolist()}
    with pytest.raises(ValueError, match=r"do not describe one ranking per user"):
        save_rankings(tmp_path, "x", "test", users, targets[:1], items, scores)


def test_share_prefixes_decodes_the_same_table_and_is_keyed_only_when_on(tmp_path):
    import dataclasses

    from agrec.config import profile_from_dict
    from agrec.decode.config import DecodeConfig, EvalConfig
    from agrec.decode.shard import SINGLE
    from agrec.decode.stage import decode_table
    from tests.decode.test_shard import _setup

    tiny, split, prompt, scorers = _setup()
    ev = EvalConfig(alpha_grid=[0.0, 0.3, 0.6, 1.0], scorer="lightgcn", scorers=["lightgcn"],
                    released_code_variants=False)
    dec = DecodeConfig(beam_size=6, top_n=4, batch_size=4)
    reps = {}
    for on in (False, True):
        folder = tmp_path / str(on)
        reps[on] = decode_table(tiny.model, tiny.trie, 0, split, prompt, scorers,
                                dataclasses.replace(dec, share_prefixes=on), ev, folder, seed=11, env=SINGLE,
                                log=lambda m: None)
    # every row, the α chosen and each ranking: as decoded one row at a time (the scores agree to rounding)
    assert [r["metrics"] for r in reps[True].rows] == [r["metrics"] for r in reps[False].rows]
    assert reps[True].chosen == reps[False].chosen
    for f in sorted((tmp_path / "False" / "rankings").iterdir()):
        a, b = np.load(f), np.load(tmp_path / "True" / "rankings" / f.name)
        assert np.array_equal(a["items"], b["items"]), f.name
        np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-5, atol=1e-5)
    # off is the default and leaves recorded runs current; on is part of the decode stage's key
    plain = profile_from_dict({"name": "p"})
    assert "share_prefixes" not in plain.to_dict()["decode"]
    on = profile_from_dict({"name": "p", "decode": {"share_prefixes": True}})
    assert on.section_hash("decode") != plain.section_hash("decode")
