"""The gnn stage: per-model caching under run/gnn/<model>/, metrics with valid and test, reload."""

import json

import pytest
import torch
from safetensors.torch import load_file

from agrec.run.lineage import stage_status
from agrec.config import load_profile
from agrec.errors import ConfigError
from agrec.gnn.stage import read_curves, read_metrics, run_gnn_stage, train_gnn
from agrec.run.session import open_session

from conftest import CI_PROFILE

TINY = {"gnn.models": ["lightgcn", "xsimgcl"], "gnn.train.epochs": 2, "gnn.train.eval_every": 1,
        "gnn.train.progress": False, "gnn.lightgcn.embedding_dim": 8, "gnn.xsimgcl.embedding_dim": 8,
        "gnn.sgl.embedding_dim": 8}


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One run directory for the module: the data stage runs once."""
    return tmp_path_factory.mktemp("gnn_stage")


def session(root, **extra):
    return open_session(CI_PROFILE, run_dir=root / "run", report_dir=root / "rep", overrides={**TINY, **extra})


def test_stage_trains_listed_models_and_reuses_them(shared):
    tmp_path = shared
    s = session(tmp_path)
    models = run_gnn_stage(s)
    assert list(models) == ["lightgcn", "xsimgcl"]
    folder = s.run.root / "gnn" / "lightgcn"
    assert {p.name for p in folder.iterdir()} == {"weights.safetensors", "curves.csv", "metrics.json"}
    rec = read_metrics(s, "lightgcn")
    assert set(rec["valid"]) >= {"HR@5", "NDCG@5", "HR@10", "NDCG@10"} and set(rec["test"]) == set(rec["valid"])
    assert rec["epochs_run"] == 2 and 1 <= rec["best_epoch"] <= 2
    assert len(read_curves(s, "lightgcn")) == 2
    assert stage_status(s.profile, s.run, "gnn").current
    stamp = (folder / "metrics.json").stat().st_mtime_ns

    # cached: same weights back, nothing rewritten
    again = train_gnn(session(tmp_path), "lightgcn")
    assert (folder / "metrics.json").stat().st_mtime_ns == stamp
    assert not again.training
    torch.testing.assert_close(again.item_embeddings(), models["lightgcn"].item_embeddings(), rtol=0, atol=0)

    # another model's settings do not retrain LightGCN; its own do
    train_gnn(session(tmp_path, **{"gnn.xsimgcl.eps": 0.1}), "lightgcn")
    assert (folder / "metrics.json").stat().st_mtime_ns == stamp
    assert read_metrics(session(tmp_path, **{"gnn.xsimgcl.eps": 0.1}), "xsimgcl") is None
    s2 = session(tmp_path, **{"gnn.lightgcn.reg_weight": 0.01})
    assert read_metrics(s2, "lightgcn") is None
    train_gnn(s2, "lightgcn")
    assert json.loads((folder / "metrics.json").read_text())["config_hash"] != rec["config_hash"]


def test_default_model_is_the_profiles(shared):
    s = session(shared, **{"gnn.model": "sgl", "gnn.models": []})
    assert s.profile.gnn.stage_models() == ["sgl"]
    assert train_gnn(s).name == "sgl"


def test_gnn_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="gnn.models: unknown model"):
        load_profile(CI_PROFILE, {"gnn.models": ["gcn"]})
    with pytest.raises(ConfigError, match="gnn.xsimgcl.cl_layer"):
        load_profile(CI_PROFILE, {"gnn.xsimgcl.cl_layer": 5})
    with pytest.raises(ConfigError, match="gnn.train.valid_metric"):
        load_profile(CI_PROFILE, {"gnn.train.valid_metric": "MRR@10"})
    with pytest.raises(ConfigError, match="gnn.lightgcn.dim"):
        load_profile(CI_PROFILE, {"gnn.lightgcn.dim": 5})


def test_agrec_run_knows_the_stage_and_its_notebook():
    import nbformat

    from agrec.config import STAGE_NOTEBOOKS
    from agrec.run.pipeline import default_notebooks_dir

    # pipeline order: after the semantic IDs, before the LM and the decoder that use it
    assert list(STAGE_NOTEBOOKS)[:6] == ["data", "semantic_ids", "gnn", "lm", "decode", "analysis"]
    nb = nbformat.read(default_notebooks_dir() / STAGE_NOTEBOOKS["gnn"], as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and 'config_path = "../configs/ml100k-ci.yaml"' in params[0].source
    assert "gnn" in load_profile(CI_PROFILE).pipeline.stages


def test_damaged_weights_are_retrained_never_loaded(shared):
    s = session(shared, **{"gnn.models": ["lightgcn"]})
    train_gnn(s, "lightgcn")
    folder = s.run.root / "gnn" / "lightgcn"
    weights = folder / "weights.safetensors"
    good = load_file(weights)
    raw = weights.read_bytes()
    weights.write_bytes(raw[:-8] + b"\0" * 8)  # same size, damaged tail
    st = stage_status(s.profile, s.run, "gnn")
    assert not st.current and any(str(weights) in r for r in st.reasons)
    stamp = (folder / "metrics.json").stat().st_mtime_ns
    train_gnn(s, "lightgcn")  # the sha256 in metrics.json does not match: retrained, not loaded
    assert (folder / "metrics.json").stat().st_mtime_ns != stamp
    again = load_file(weights)  # a complete, loadable file with the sha256 its new record lists
    assert again.keys() == good.keys()
    rec = json.loads((folder / "metrics.json").read_text())
    from agrec.fingerprint import sha256_file
    assert rec["weights_sha256"] == sha256_file(weights)


def test_tsne_without_genres_draws_every_item_in_one_visible_colour():
    import numpy as np

    from agrec.gnn.plots import PALETTE, distinctive_genre, tsne_by_label

    labels = distinctive_genre([[] for _ in range(5)])     # an LC-Rec folder with codes and no item text
    assert labels == ["unknown"] * 5
    ax = tsne_by_label(np.arange(10.0).reshape(5, 2), labels, "t").axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["no genres (5 items)"]
    assert [tuple(c.get_facecolor()[0][:3]) for c in ax.collections] == [
        tuple(int(PALETTE[0][i:i + 2], 16) / 255 for i in (1, 3, 5))]
    # with genres, unknowns stay pale grey behind the known genres
    ax = tsne_by_label(np.arange(10.0).reshape(5, 2), ["unknown", "A", "A", "B", "unknown"], "t").axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["unknown", "A (2)", "B (1)"]
