"""agrec.analysis.table2: rows read from decode.json, paper rows beside them, markdown."""

import json

import pytest

from agrec.analysis.table2 import read_run, table2, to_markdown
from agrec.errors import AgrecError


def _metrics(h5, n5, h10, n10):
    return {"HR@5": h5, "NDCG@5": n5, "HR@10": h10, "NDCG@10": n10}


def _write(folder, rows, sig=None, chosen=None):
    (folder / "results").mkdir(parents=True)
    d = {"n_users": 3, "chosen": chosen or {"alpha": 0.2, "tau": 1.0},
         "rows": {k: {"valid": v, "test": v} for k, v in rows.items()}, "significance_test": sig or {}}
    (folder / "results" / "decode.json").write_text(json.dumps(d))
    return folder


def test_rows_in_order_with_p_values_and_paper(tmp_path):
    folder = _write(tmp_path / "Instruments" / "cpu", {
        "AGRec (lightgcn)": _metrics(0.09, 0.07, 0.12, 0.08),
        "w/o Graph": _metrics(0.08, 0.06, 0.11, 0.075),
        "GNN only (lightgcn)": _metrics(0.07, 0.05, 0.10, 0.065),
        "GNN only (sgl)": _metrics(0.01, 0.01, 0.01, 0.01),
    }, sig={"w/o Graph": {"HR@10": 0.03, "NDCG@10": 0.00002}, "GNN only (lightgcn)": {"HR@10": 0.5}})
    run = read_run(folder)
    assert (run.dataset, run.profile) == ("Instruments", "cpu")
    df = table2([run])
    assert list(df["row"]) == ["ours: LM alone (w/o Graph)", "ours: LightGCN alone", "ours: AGRec (LightGCN)",
                               "paper: TIGER", "paper: AGRec (Llama-3.2-1B)"]
    assert df.loc[0, "p HR@10"] == 0.03 and df.loc[1, "p HR@10"] == 0.5
    assert df.loc[2, "alpha"] == 0.2 and df.loc[2, "HR@10"] == 0.12
    md = to_markdown(df)
    assert "| Instruments | ours: LM alone (w/o Graph) | .0800 | .0600 | .1100 | .0750 | 0.03 | <1e-4 |  |" in md
    assert "| Instruments | paper: AGRec (Llama-3.2-1B) |  |  | .1260 | .0950 |  |  |  |" in md
    assert "| Instruments | ours: AGRec (LightGCN) | .0900 | .0700 | .1200 | .0800 |  |  | 0.2 |" in md


def test_unknown_dataset_has_no_paper_rows(tmp_path):
    folder = _write(tmp_path / "Mine" / "cpu", {"w/o Graph": _metrics(0.1, 0.1, 0.1, 0.1)})
    df = table2([read_run(folder)])
    assert list(df["row"]) == ["ours: LM alone (w/o Graph)"]


def test_missing_or_broken_results_are_named(tmp_path):
    with pytest.raises(AgrecError, match="no decode results"):
        read_run(tmp_path / "X" / "cpu")
    bad = tmp_path / "Y" / "cpu" / "results"
    bad.mkdir(parents=True)
    (bad / "decode.json").write_text("{")
    with pytest.raises(AgrecError, match="decode.json: not valid JSON"):
        read_run(bad.parent)
    (bad / "decode.json").write_text(json.dumps({"rows": {"w/o Graph": {"valid": {}}}}))
    with pytest.raises(AgrecError, match="row 'w/o Graph' has no test metrics"):
        read_run(bad.parent)
