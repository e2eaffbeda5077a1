"""`agrec run` executes the lm stage's notebook into the report folder."""

import json

from agrec.cli import main

from conftest import CI_PROFILE


def test_agrec_run_executes_the_finetune_notebook(tmp_path, capsys):
    args = ["run", "--config", str(CI_PROFILE), "--stages", "lm",
            "--set", f"pipeline.runs_dir={tmp_path / 'runs'}", "--set", f"pipeline.reports_dir={tmp_path / 'reports'}",
            "--set", "lm.max_users=30", "--set", "lm.tiny.hidden_size=32", "--set", "lm.tiny.intermediate_size=64"]
    assert main(args) == 0, capsys.readouterr().err
    assert "[1/1] lm: done" in capsys.readouterr().out
    rep = tmp_path / "reports" / "ml-100k" / "ci"
    assert (rep / "04_finetune.ipynb").is_file() and (rep / "figures" / "lm_loss_curves.png").is_file()
    for t in ("lm_parameters", "lm_level_accuracy", "lm_throughput", "lm_val_curve"):
        assert (rep / "tables" / f"{t}.md").is_file(), t
    res = json.loads((rep / "results" / "lm.json").read_text())
    assert res["backbone"] == "tiny" and res["finetune"] == "full" and res["epochs"] == 1
    assert res["params_trainable"] == res["params_total"] and len(res["val_level_acc"]) >= 3
    rec = json.loads((tmp_path / "runs" / "ml-100k" / "ci" / "lm" / "stage.json").read_text())
    assert rec["config"]["lm"]["max_users"] == 30  # the --set overrides reached the notebook
