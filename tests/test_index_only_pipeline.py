"""The whole pipeline (all six notebooks) on an LC-Rec folder with interactions and given codes but no item text, the
shape of the authors' public Instruments / Games / Beauty folders: tests/data/index_only.py writes a CI-sized
synthetic one (120 users, 48 items, three colliding code tuples)."""

import json
import re

from agrec.cli import main
from agrec.run.pipeline import run_pipeline
from tests.data.index_only import write_index_only

# CI-sized, in the spirit of configs/ml100k-ci.yaml: given codes (semantic_ids.use_given_codes, the default) made
# collision-free by an extra level; one GNN; a 2 x 64 Llama for one epoch; a 2-epoch SASRec; a 3-point alpha grid.
PROFILE = """name: ci
seed: 2024
data: {dataset: Synth, format: lcrec, path: Synth, min_seq_len: 3}
semantic_ids: {dedup: extra_level}
gnn:
  model: lightgcn
  models: [lightgcn]
  train: {epochs: 4, eval_every: 2, patience: 2, learning_rate: 0.01, progress: false}
  lightgcn: {embedding_dim: 16}
lm:
  backbone: tiny
  codes: semantic_ids
  epochs: 1
  batch_size: 32
  lr: 3.0e-3
  progress: false
  tiny: {hidden_size: 64, num_layers: 2, num_heads: 2, num_kv_heads: 2, intermediate_size: 128}
decode: {beam_size: 20, top_n: 10}
evaluation:
  alpha_grid: [0.0, 0.5, 1.0]
  scorers: [lightgcn, sasrec]
baselines:
  sasrec: {hidden_size: 16, inner_size: 32, train_stride: 50, epochs: 2, eval_every: 1, patience: 2, progress: false}
pipeline:
  stages: [data, semantic_ids, gnn, lm, decode, analysis]
  num_threads: 1
  runs_dir: runs
  reports_dir: reports
analysis: {explorer_users: 4, tsne_items: 40, tsne_perplexity: 5.0}
"""


def test_index_only_folder_runs_every_stage(tmp_path, capsys):
    write_index_only(tmp_path / "Synth")
    prof = tmp_path / "synth-ci.yaml"
    prof.write_text(PROFILE)
    logs = []
    run_pipeline(prof, log=logs.append)
    assert [line.split(":")[0] for line in logs if line.split(": ")[-1].startswith("done")] == [
        f"[{i}/6] {s}" for i, s in enumerate(["data", "semantic_ids", "gnn", "lm", "decode", "analysis"], 1)]
    # the report-only stage keeps nothing in the run folder: a first run says its report is missing, nothing else
    assert "[6/6] analysis: no report yet; made from the current upstream stages" in logs
    rep = tmp_path / "reports" / "Synth" / "ci"
    res = {name: json.loads((rep / "results" / f"{name}.json").read_text())
           for name in ("data", "semantic_ids", "decode", "analysis")}

    d = res["data"]
    assert (d["users"], d["items"], d["interactions"], d["split"]) == (120, 48, 930, {"train": 690, "valid": 120,
                                                                                      "test": 120})
    assert d["notes"] == []        # Synth is not in the registry: no registry note

    sem = res["semantic_ids"]      # the given 4-level codes, three colliding pairs separated by a 5th level
    assert (sem["source"], sem["n_levels"], sem["codebook_sizes"]) == ("index.json", 5, [4, 3, 4, 1, 2])
    assert (sem["collision_rate_before"], sem["collision_rate_after"]) == (0.0625, 0.0)
    assert sem["dedup"]["colliding_items_before"] == 6 and sem["coherence"] == {} and sem["fit"] is None

    assert {"w/o Graph", "GNN only (lightgcn)", "SASRec only", "AGRec (lightgcn)", "AGRec (sasrec)"} <= set(
        res["decode"]["rows"])

    # analysis: t-SNE of the spaces that exist (no text embedding, no genre colouring); ids stand for titles
    panels = re.findall(r'"text":"([^"]*) \\u00b7 ([^"]*)"', (rep / "figures" / "tsne.html").read_text())
    assert sorted(panels) == [("GNN (lightgcn)", "first code"), ("LM code tokens", "first code")]
    case = res["analysis"]["case_study"]
    assert case["target"] in {str(i) for i in range(48)}
    history = (rep / "tables" / "case_history.csv").read_text().splitlines()
    assert history[0] == "position,item,title" and all(r.split(",")[1] == r.split(",")[2] for r in history[1:])
    for f in ("code_tree.png", "code_usage.png", "gnn_training_curves.png", "lm_loss_curves.png", "alpha_curve.png",
              "complementarity.png", "homogeneity.png", "case_study.png", "beam_explorer.png", "fsm_viewer.png"):
        assert (rep / "figures" / f).is_file(), f

    assert main(["status", "--config", str(prof)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "analysis      current"
