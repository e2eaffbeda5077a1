"""Decode variants (agrec.decode.variants): parsing with errors that name the variant and key, and their rows
in the decode stage — α chosen on validation like the main row's, test decoded at the chosen point only."""

import json

import numpy as np
import pytest

from agrec.config import load_profile, profile_from_dict
from agrec.decode.config import DecodeConfig, EvalConfig
from agrec.decode.point import DecodePoint
from agrec.decode.shard import SINGLE
from agrec.decode.stage import decode_table, load_report, slug
from agrec.decode.variants import choose_point, parse_variants
from agrec.errors import ConfigError
from tests.decode.test_shard import _setup


def _parse(variants, **ev_kw):
    return parse_variants(EvalConfig(decode_variants=variants, **ev_kw), DecodeConfig())


def test_defaults_come_from_the_evaluation_grids_and_tau_fixes_one_point():
    v, = _parse({"gate": {"alpha_gate": "entropy", "tau": 0.5}}, alpha_grid=[0.0, 0.3, 1.0], tau_grid=[1.0, 2.0])
    assert v.row == "AGRec [gate]"
    assert v.settings == {"alpha_gate": "entropy"}
    assert v.points() == [(0.0, 0.5), (0.3, 0.5), (1.0, 0.5)]
    lv, = _parse({"lv": {"alpha_grid": [[0.2, 0], 0.4]}}, tau_grid=[1.0, 2.0])
    assert lv.points() == [([0.2, 0.0], 1.0), (0.4, 1.0), ([0.2, 0.0], 2.0), (0.4, 2.0)]
    assert _parse(None) == [] and _parse({"same": None})[0].settings == {}


def test_plain_points_are_alpha_zero_with_graph_settings_only():
    v, f = _parse({"n": {"top_n": 20}, "f": {"floor": 1e-3}})
    assert v.is_plain(0.0) and v.is_plain([0.0, 0.0]) and not v.is_plain([0.0, 0.1])
    assert not f.is_plain(0.0)  # the floor changes the plain beam search too


@pytest.mark.parametrize("variants, message", [
    ({"a": {"alpha": 0.3}}, "evaluation.decode_variants.a.alpha: a variant's α is chosen on validation"),
    ({"a": {"beam_size": 5}}, "evaluation.decode_variants.a: unknown key(s) ['beam_size']"),
    ({"a": {"alpha_grid": [0.2, [0.1, 1.5]]}}, "evaluation.decode_variants.a (α=[0.1,1.5], τ=1): decode.alpha must be"),
    ({"a": {"alpha_grid": [0.2, 0.2]}}, "evaluation.decode_variants.a.alpha_grid lists a point twice"),
    ({"a": {"alpha_grid": []}}, "evaluation.decode_variants.a.alpha_grid must be a non-empty list"),
    ({"a": {"alpha_grid": [0.2, "x"]}}, "evaluation.decode_variants.a.alpha_grid[1]: expected a number"),
    ({"a": {"tau": 0}}, "evaluation.decode_variants.a (α=0, τ=0): decode.tau must be a positive number"),
    ({"a": {"tau": 1, "tau_grid": [1]}}, "give tau or tau_grid, not both"),
    ({"a": {"top_n": True}}, "evaluation.decode_variants.a.top_n must be an integer"),
    ({"a": {"top_n": 0}}, "decode.top_n must be >= 1"),
    ({"a": {"mix": "logit", "alpha_gate": "entropy"}}, "needs mix='prob'"),
    ({"a": {"renormalize": "yes"}}, "evaluation.decode_variants.a.renormalize must be true or false"),
    ({"a": 0.3}, "evaluation.decode_variants.a must be a mapping"),
    ({"x [y]": {}}, "a name must be a non-empty string without '['"),
    ({"top n": {}, "top-n": {}}, "evaluation.decode_variants.top-n: its rankings file name 'agrec_top_n'"),
])
def test_bad_variants_are_refused_with_the_variant_and_key(variants, message):
    with pytest.raises(ConfigError) as e:
        _parse(variants)
    assert message in str(e.value)


def test_a_profile_with_bad_variants_does_not_load_and_one_without_keeps_its_hash(tmp_path):
    raw = {"name": "p", "evaluation": {"decode_variants": {"gate": {"alpha_gate": "sometimes"}}}}
    with pytest.raises(ConfigError, match=r"p.yaml: evaluation.decode_variants.gate \(α=0, τ=1\): decode.alpha_gate"):
        (tmp_path / "p.yaml").write_text(json.dumps(raw))
        load_profile(tmp_path / "p.yaml")
    plain = profile_from_dict({"name": "p"})
    assert "decode_variants" not in plain.to_dict()["evaluation"]  # neutral: recorded runs stay current
    with_v = profile_from_dict({"name": "p", "evaluation": {"decode_variants": {"gate": {"alpha_gate": "entropy"}}}})
    assert with_v.section_hash("evaluation") != plain.section_hash("evaluation")


def test_choice_ties_go_to_the_earlier_point():
    curve = [{"valid": {"m": 0.1}}, {"valid": {"m": 0.3}}, {"valid": {"m": 0.3}}]
    assert choose_point(curve, "m") == 1


def _run(folder, alpha_grid=(0.0, 0.5, 1.0), top_n=4, **ev_kw):
    tiny, split, prompt, scorers = _setup()
    ev = EvalConfig(alpha_grid=list(alpha_grid), scorer="lightgcn", scorers=["lightgcn"],
                    released_code_variants=False, **ev_kw)
    dec = DecodeConfig(beam_size=6, top_n=top_n, batch_size=4)
    return decode_table(tiny.model, tiny.trie, 0, split, prompt, scorers, dec, ev, folder, seed=11, env=SINGLE,
                        log=lambda m: None)


def test_variant_rows_are_chosen_on_validation_and_equal_the_profile_that_sets_them(tmp_path):
    variants = {"same": {}, "top-n 8": {"top_n": 8}, "level 0": {"alpha_grid": [[0.5, 0.0], [1.0, 0.0]]}}
    rep = _run(tmp_path / "v", decode_variants=variants)
    rows = {r["name"]: r for r in rep.rows}
    # an empty variant repeats the main row's choice exactly (same grid, same validation users, same metric)
    assert rep.variants["same"]["chosen"]["alpha"] == rep.chosen["alpha"]
    assert rows["AGRec [same]"]["metrics"] == rows["AGRec (lightgcn)"]["metrics"]
    ranked = lambda name: np.load(tmp_path / "v" / "rankings" / f"{name}.npz")["items"]  # noqa: E731
    assert np.array_equal(ranked("agrec_same__test"), ranked("agrec_lightgcn__test"))
    # top_n takes effect: at α = 1 the FSM alone ranks, from the scorer's top 8 instead of its top 4
    assert not np.array_equal(ranked("agrec_top_n_8_1_1__valid"), ranked("1_1__valid"))
    assert (ranked("agrec_top_n_8_1_1__valid")[:, :8] >= 0).all()
    # α = 0 with top_n changed is w/o Graph, reused rather than decoded again
    top8 = rep.variants["top-n 8"]
    assert top8["curve"][0]["valid"] == rows["w/o Graph"]["metrics"]["valid"]
    assert top8["settings"] == {"top_n": 8} and top8["grid"] == {"alpha": [0.0, 0.5, 1.0], "tau": [1.0]}
    # the chosen point is the best validation point; its test metrics are the row's
    best = max(top8["curve"], key=lambda p: p["valid"]["NDCG@10"])["valid"]["NDCG@10"]
    assert top8["chosen"]["valid"]["NDCG@10"] == best
    assert rows["AGRec [top-n 8]"]["metrics"]["valid"] == top8["chosen"]["valid"]
    # ... and equal a profile whose decode.top_n is 8 with α fixed at that point (top-8 needs rankings 8 deep)
    a = top8["chosen"]["alpha"]
    if a > 0:
        ref = _run(tmp_path / "ref", alpha_grid=sorted({0.0, a, 1.0}), top_n=8)
        point = next(p for p in ref.curve if p["alpha"] == a)
        assert rows["AGRec [top-n 8]"]["metrics"]["test"] == point["test"]
        got = np.load(tmp_path / "v" / "rankings" / "agrec_top_n_8__test.npz")
        want = np.load(tmp_path / "ref" / "rankings" / f"{slug(f'α={a:g} τ=1')}__test.npz")
        assert np.array_equal(got["items"], want["items"])
    # per-level grid points are recorded as lists; the row carries its settings and chosen α
    level = rep.variants["level 0"]
    assert [p["alpha"] for p in level["curve"]] == [[0.5, 0.0], [1.0, 0.0]]
    assert rows["AGRec [level 0]"]["settings"]["alpha"] == level["chosen"]["alpha"]
    # the record round-trips through results.json
    saved = json.loads((tmp_path / "v" / "results.json").read_text())["decode_variants"]
    assert saved == rep.variants and set(saved) == set(variants)
    assert load_report(tmp_path / "v").variants == rep.variants
    assert (tmp_path / "v" / "rankings" / "agrec_level_0__test.npz").is_file()
    # every decoded row's settings are a DecodePoint that reads back to itself; the variant row carries its
    # override and its per-level α as the decoder it was decoded with
    for r in rep.rows:
        if list(r["settings"]) != ["scorer"]:   # a scorer's own ranking records only its scorer
            assert DecodePoint.from_json(r["settings"]).to_json() == r["settings"], r["name"]
    lv = DecodePoint.from_json(rows["AGRec [level 0]"]["settings"])
    assert lv.alpha == tuple(level["chosen"]["alpha"]) and lv.overrides == ()
    t8 = DecodePoint.from_json(rows["AGRec [top-n 8]"]["settings"])
    assert dict(t8.overrides) == {"top_n": 8} and t8.config(DecodeConfig()).top_n == 8


def test_no_variants_leave_results_json_as_before(tmp_path):
    _run(tmp_path / "n")
    assert "decode_variants" not in json.loads((tmp_path / "n" / "results.json").read_text())
