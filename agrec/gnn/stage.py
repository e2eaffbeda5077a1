"""The ``gnn`` stage: train (or reload) the auxiliary GNNs and evaluate them as standalone recommenders.

Layout under ``<run>/gnn/``:

    <model>/weights.safetensors   the best (validation) layer-0 embeddings
    <model>/curves.csv            per epoch: loss parts, seconds, validation metrics
    <model>/metrics.json          valid + test metrics, timing, config and its hash (written last)
    <model>/checkpoint.pt         resumable training state; removed once the model is finished
    stage.json                    the stage record, once every listed model is done

Each model is cached on its own: its key hashes the ``data`` section, ``gnn.train``, its own
``gnn.<model>`` section and the seed, so changing SGL's settings does not retrain LightGCN.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
from safetensors.torch import load_file, save_file

import agrec
from agrec.data.stage import prepare_data
from agrec.errors import AgrecError, ConfigError
from agrec.gnn.base import GraphRecommender
from agrec.gnn.config import GNN_MODELS
from agrec.gnn.evaluate import evaluate_gnn
from agrec.gnn.graph import InteractionGraph
from agrec.gnn.registry import build_model
from agrec.gnn.trainer import fit, resolve_device
from agrec.io import atomic_path, atomic_write_json
from agrec.lineage import config_key
from agrec.session import Session

STAGE = "gnn"
WEIGHTS, CURVES, METRICS, CHECKPOINT = "weights.safetensors", "curves.csv", "metrics.json", "checkpoint.pt"


def model_key(session: Session, name: str) -> str:
    """Hash of what model ``name`` depends on: data (section and the data stage's artefacts), gnn.train,
    gnn.<name>, seed, agrec version."""
    d = session.profile.to_dict()
    payload = {"data": d["data"], "train": _without_runtime(d["gnn"]["train"]), name: d["gnn"][name],
               "seed": session.profile.seed, "data_digest": session.run.digest("data"),
               "agrec": agrec.__version__}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _without_runtime(train: dict[str, Any]) -> dict[str, Any]:
    # Where it runs and whether a bar is shown do not change what is learnt.
    return {k: v for k, v in train.items() if k not in ("progress", "device")}


def model_dir(session: Session, name: str) -> Path:
    d = session.run.stage_dir(STAGE) / name
    d.mkdir(parents=True, exist_ok=True)
    return d


def _check_name(session: Session, model: str | None) -> str:
    name = model or session.profile.gnn.model
    if name not in GNN_MODELS:
        raise ConfigError(f"unknown GNN {name!r}; known: {list(GNN_MODELS)}")
    return name


def read_metrics(session: Session, model: str | None = None) -> dict[str, Any] | None:
    """The metrics record of a finished model (None if it has not been trained with this config)."""
    name = _check_name(session, model)
    path = session.run.root / STAGE / name / METRICS
    if not path.is_file():
        return None
    rec = json.loads(path.read_text(encoding="utf-8"))
    return rec if rec.get("config_hash") == model_key(session, name) else None


def read_curves(session: Session, model: str | None = None) -> pd.DataFrame:
    """The training curves of a finished model (one row per epoch)."""
    name = _check_name(session, model)
    path = session.run.root / STAGE / name / CURVES
    if not path.is_file():
        raise AgrecError(f"no training curves for GNN {name!r} at {path}: run train_gnn first")
    return pd.read_csv(path)


def _build(session: Session, name: str, graph: InteractionGraph) -> GraphRecommender:
    profile = session.profile
    return build_model(name, profile.gnn.model_config(name), graph, profile.seed,
                       device=resolve_device(profile.gnn.train.device))


def train_gnn(session: Session, model: str | None = None, force: bool = False,
              progress: bool | None = None) -> GraphRecommender:
    """Return the trained GNN ``model`` (default: the profile's ``gnn.model``) in eval mode.

    Reuses ``<run>/gnn/<model>/`` when it was produced by the same configuration; otherwise trains
    (resuming an interrupted run of the same configuration), evaluates on validation and — once,
    after training — on test, and writes weights, curves and metrics.
    """
    name = _check_name(session, model)
    profile = session.profile
    ds, split = prepare_data(session)
    graph = InteractionGraph.from_split(split, ds.n_items)
    folder = model_dir(session, name)
    key = model_key(session, name)
    net = _build(session, name, graph)
    rec = None if force else read_metrics(session, name)
    if rec is not None and _weights_intact(folder / WEIGHTS, rec):
        net.load_state_dict(load_file(folder / WEIGHTS, device=str(net.device)))
        return net.eval()

    (folder / METRICS).unlink(missing_ok=True)
    if force:
        (folder / CHECKPOINT).unlink(missing_ok=True)
    result = fit(net, split, profile.gnn.train, profile.seed, checkpoint=folder / CHECKPOINT, key=key,
                 progress=progress)
    test = evaluate_gnn(net, split, "test", (5, 10, 20), exclude_history=profile.gnn.train.exclude_history)
    valid = evaluate_gnn(net, split, "valid", (5, 10, 20), exclude_history=profile.gnn.train.exclude_history)

    with atomic_path(folder / WEIGHTS) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(tmp),
                  metadata={"model": name, "config_hash": key})
    with atomic_path(folder / CURVES) as tmp:
        result.curves.to_csv(tmp, index=False)
    from agrec.fingerprint import sha256_file

    atomic_write_json(folder / METRICS, {
        "model": name, "config_hash": key, "seed": profile.seed, "weights_sha256": sha256_file(folder / WEIGHTS),
        "valid": valid, "test": test,
        "best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "stopped_early": result.stopped_early,
        "train_seconds": result.train_seconds, "seconds_per_epoch": result.seconds_per_epoch,
        "resumed_from": result.resumed_from, "n_edges": graph.n_edges,
        "n_parameters": sum(p.numel() for p in net.parameters()),
        "config": {"train": profile.to_dict()["gnn"]["train"], name: profile.to_dict()["gnn"][name]},
    })
    (folder / CHECKPOINT).unlink(missing_ok=True)
    return net


def _weights_intact(path: Path, metrics: dict[str, Any]) -> bool:
    """The weights file exists and has the sha256 its metrics record lists (a damaged file is retrained,
    never loaded)."""
    from agrec.fingerprint import sha256_file

    if not path.is_file():
        return False
    want = metrics.get("weights_sha256")
    return want is None or sha256_file(path) == want


def run_gnn_stage(session: Session, force: bool = False, progress: bool | None = None) -> dict[str, GraphRecommender]:
    """Train every GNN the profile lists (``gnn.models`` and ``gnn.model``); mark the stage done.

    Returns ``{name: model}`` in eval mode, in the profile's order.
    """
    profile = session.profile
    names = profile.gnn.stage_models()
    prepare_data(session)  # first, so that the stage's status sees the current data stage
    key = config_key(profile, STAGE)
    current = not force and session.run.is_current(STAGE, key, profile)
    models = {name: train_gnn(session, name, force=force, progress=progress) for name in names}
    if not current:
        session.run.mark_done(STAGE, key, profile, models={n: read_metrics(session, n) for n in names})
    return models



def results_table(session: Session, models: list[str] | None = None) -> pd.DataFrame:
    """One row per trained GNN: test HR@5/10, NDCG@5/10 (the ablation's "GNN only" rows), the
    validation score it was selected on, and its training cost."""
    names = models if models is not None else session.profile.gnn.stage_models()
    metric = session.profile.gnn.train.valid_metric
    rows = []
    for name in names:
        rec = read_metrics(session, name)
        if rec is None:
            raise AgrecError(f"GNN {name!r} has not been trained with this configuration: run train_gnn first")
        rows.append({"model": name, **{k: rec["test"][k] for k in ("HR@5", "NDCG@5", "HR@10", "NDCG@10")},
                     f"valid {metric}": rec["valid"][metric], "best epoch": rec["best_epoch"],
                     "epochs": rec["epochs_run"], "s/epoch": rec["seconds_per_epoch"]})
    return pd.DataFrame(rows)
