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
    assert len(alpha_curves_across_runs(curves).axes) == 2


def test_scan_names_a_broken_file(tmp_path):
    p = tmp_path / "d" / "p" / "decode" / "results.json"
    p.parent.mkdir(parents=True)
    p.write_text("{}")
    with pytest.raises(AgrecError, match="results.json"):
        scan_alpha_curves(tmp_path)
