import json

import pytest

from agrec.analysis.curves import alpha_curves_across_runs, scan_alpha_curves
from agrec.errors import AgrecError


def _results(alphas):
    return {"curve": [{"alpha": a, "tau": 1.0, "valid": {"HR@10": a, "NDCG@10": a / 2},
                       "test": {"HR@10": 1 - a, "NDCG@10": (1 - a) / 2}} for a in alphas]}


def test_scan_finds_every_run(tmp_path):
    for ds, prof, alphas in (("ml-100k", "quick", [0.0, 0.5]), ("ml-100k", "ci", [0.0, 0.3, 1.0])):
        p = tmp_path / ds / prof / "decode" / "results.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps(_results(alphas)))
    (tmp_path / "ml-100k" / "empty").mkdir()
    curves = scan_alpha_curves(tmp_path)
    assert list(curves) == ["ml-100k/ci", "ml-100k/quick"]
    c = curves["ml-100k/ci"]
    assert len(c) == 3 * 2 * 2
    assert c[(c.alpha == 0.3) & (c.target == "test") & (c.metric == "HR@10")]["value"].item() == pytest.approx(0.7)
    fig = alpha_curves_across_runs(curves)
    # one line per run on each metric's panel, holding exactly that run's test values (HR@10 = 1 - α, NDCG = half)
    for ax, scale in zip(fig.axes, (1.0, 0.5)):
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        assert set(lines) == {"ml-100k/ci", "ml-100k/quick"}
        for label, alphas in (("ml-100k/ci", [0.0, 0.3, 1.0]), ("ml-100k/quick", [0.0, 0.5])):
            assert list(lines[label].get_xdata()) == alphas
            assert list(lines[label].get_ydata()) == pytest.approx([(1 - a) * scale for a in alphas])
    assert [ax.get_ylabel() for ax in fig.axes] == ["HR@10 (test)", "NDCG@10 (test)"]


def test_scan_names_a_broken_file(tmp_path):
    p = tmp_path / "d" / "p" / "decode" / "results.json"
    p.parent.mkdir(parents=True)
    p.write_text("{}")
    with pytest.raises(AgrecError, match="results.json"):
        scan_alpha_curves(tmp_path)


def test_a_curve_with_test_metrics_at_some_points_only_is_plotted_as_far_as_it_goes(tmp_path):
    from agrec.analysis.curves import alpha_curve_figure
    from agrec.decode.stage import curve_records

    d = _results([0.0, 0.3, 0.5, 1.0])
    d["curve"][1]["test"] = d["curve"][2]["test"] = None       # evaluation.test_curve: false, α = 0.3 / 0.5 not in the table
    p = tmp_path / "ml-100k" / "big" / "decode" / "results.json"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps(d))
    c = scan_alpha_curves(tmp_path)["ml-100k/big"]
    assert sorted(c[c.target == "test"]["alpha"].unique()) == [0.0, 1.0] and len(c) == 4 * 2 + 2 * 2
    assert curve_records(d["curve"]).equals(c)
    fig = alpha_curve_figure(c, chosen_alpha=0.3)
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    assert list(lines["test (table points)"].get_xdata()) == [0.0, 1.0]
    assert lines["test (table points)"].get_linestyle() == "None"      # markers only: no line across the gap
    assert list(lines["valid"].get_xdata()) == [0.0, 0.3, 0.5, 1.0]
    assert len(alpha_curves_across_runs({"x": c}).axes) == 2
    # a curve without any test point (all None) still plots its validation line
    for q in d["curve"]:
        q["test"] = None
    fig = alpha_curve_figure(curve_records(d["curve"]))
    assert [ln.get_label() for ln in fig.axes[1].get_lines()] == ["valid"]
    assert len(alpha_curves_across_runs({"x": curve_records(d["curve"])}, target="test").axes[0].get_lines()) == 0
