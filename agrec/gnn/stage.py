"""The ``gnn`` stage: train (or reload) the auxiliary GNNs and evaluate them as standalone recommenders.

Layout under ``<run>/gnn/``:

    <model>/weights.safetensors   the best (validation) layer-0 embeddings, trained on the training split
    <model>/curves.csv            per epoch: loss parts, seconds, validation metrics
    <model>/metrics.json          valid + test metrics, timing, config and its hash (written last)
    <model>/checkpoint.pt         resumable training state; removed once the model is finished
    <model>/refit.safetensors     with ``gnn.train.test_graph: refit`` only: the model retrained on
                                  train + validation for ``best_epoch`` epochs (refit_checkpoint.pt while it runs)
    stage.json                    the stage record, once every listed model is done

Each model is cached on its own: its key hashes the ``data`` section, ``gnn.train``, its own
``gnn.<model>`` section and the seed, so changing SGL's settings does not retrain LightGCN.
``gnn.train.test_graph`` is not part of that key (it does not change what is learnt on the training
split): switching it re-scores the test item with the cached weights (and refits once for ``refit``).

The validation item is scored by the training-split model; the test item by the model of
``gnn.train.test_graph`` (:func:`gnn_for_target`). ``metrics.json`` holds ``test`` (that option's test
metrics, the "GNN only" row) and ``test_by_graph`` (``train`` and ``propagate`` always — they cost one
ranking each — and ``refit`` once computed), so the effect of the option is on record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from safetensors import safe_open
from safetensors.torch import load_file

import agrec
from agrec.data.stage import RunData, load_run_data
from agrec.devices import resolve_device
from agrec.errors import AgrecError, ConfigError
from agrec.gnn.base import GraphRecommender
from agrec.gnn.config import GNN_MODELS, TEST_GRAPHS
from agrec.gnn.evaluate import evaluate_gnn
from agrec.gnn.graph import InteractionGraph
from agrec.gnn.registry import build_model
from agrec.fingerprint import sha256_file, sha256_matches, short_hash
from agrec.gnn.trainer import fit, fit_epochs
from agrec.io import atomic_path, atomic_write_json, atomic_write_safetensors
from agrec.run.lineage import config_key
from agrec.run.session import RunContext, Session

STAGE = "gnn"
WEIGHTS, CURVES, METRICS, CHECKPOINT = "weights.safetensors", "curves.csv", "metrics.json", "checkpoint.pt"
REFIT_WEIGHTS, REFIT_CHECKPOINT = "refit.safetensors", "refit_checkpoint.pt"
TEST_KS = (5, 10, 20)


def model_key(ctx: RunContext, name: str) -> str:
    """Hash of what model ``name`` depends on: data (section and the data stage's artefacts), gnn.train,
    gnn.<name>, seed, agrec version."""
    d = ctx.profile.key_dict()
    # How the test item is scored after training does not change what is learnt (test_graph: the refit has
    # its own key, see _refit_key), so the model's key leaves it out; the stage's key keeps it.
    train = {k: v for k, v in d["gnn"]["train"].items() if k != "test_graph"}
    payload = {
        "data": d["data"],
        "train": train,
        name: d["gnn"][name],
        "seed": ctx.profile.seed,
        "data_digest": ctx.run.digest("data"),
        "agrec": agrec.__version__,
    }
    return short_hash(payload)


def _refit_key(ctx: RunContext, name: str, epochs: int) -> str:
    return short_hash({"model": model_key(ctx, name), "refit_epochs": epochs})


def model_dir(ctx: RunContext, name: str) -> Path:
    d = ctx.run.stage_dir(STAGE) / name
    d.mkdir(parents=True, exist_ok=True)
    return d


def _check_name(ctx: RunContext, model: str | None) -> str:
    name = model or ctx.profile.gnn.model
    if name not in GNN_MODELS:
        raise ConfigError(f"unknown GNN {name!r}; known: {list(GNN_MODELS)}")
    return name


def _read_record(ctx: RunContext, name: str) -> dict[str, Any] | None:
    """metrics.json if its model was trained with this configuration (whatever its test_graph)."""
    path = ctx.run.root / STAGE / name / METRICS
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # absent or damaged: the model is (re)trained
    return rec if isinstance(rec, dict) and rec.get("config_hash") == model_key(ctx, name) else None


def read_metrics(ctx: RunContext, model: str | None = None) -> dict[str, Any] | None:
    """The metrics record of a finished model (None if it has not been trained with this config, or its
    test metrics are not those of the profile's ``gnn.train.test_graph``)."""
    name = _check_name(ctx, model)
    rec = _read_record(ctx, name)
    return rec if rec is not None and rec.get("test_graph") == ctx.profile.gnn.train.test_graph else None


def read_curves(ctx: RunContext, model: str | None = None) -> pd.DataFrame:
    """The training curves of a finished model (one row per epoch)."""
    name = _check_name(ctx, model)
    path = ctx.run.root / STAGE / name / CURVES
    if not path.is_file():
        raise AgrecError(f"no training curves for GNN {name!r} at {path}: run train_gnn first")
    return pd.read_csv(path)


def _build(ctx: RunContext, name: str, graph: InteractionGraph) -> GraphRecommender:
    profile = ctx.profile
    return build_model(
        name,
        profile.gnn.model_config(name),
        graph,
        profile.seed,
        device=resolve_device(profile.gnn.train.device, "gnn.train.device"),
    )


def train_gnn(
    source: Session | RunData, model: str | None = None, force: bool = False, progress: bool | None = None
) -> GraphRecommender:
    """Return the GNN ``model`` (default: the profile's ``gnn.model``) trained on the training split, in eval
    mode: the model that scores the validation item (:func:`gnn_for_target` gives the one for the test item).

    Reuses ``<run>/gnn/<model>/`` when it was produced by the same configuration; otherwise trains
    (resuming an interrupted run of the same configuration), evaluates on validation and — once,
    after training — on test (with the test-time model of ``gnn.train.test_graph``), and writes weights,
    curves and metrics. ``source``: the run's session, or its :class:`~agrec.data.stage.RunData` when the
    caller has loaded the data stage already.
    """
    data = load_run_data(source)
    name = _check_name(data, model)
    profile, split = data.profile, data.split
    graph = InteractionGraph.from_split(split, data.ds.n_items, "valid")
    folder = model_dir(data, name)
    key = model_key(data, name)
    net = _build(data, name, graph)
    rec = None if force else _read_record(data, name)
    if rec is not None and _weights_intact(folder / WEIGHTS, rec):
        net.load_state_dict(load_file(folder / WEIGHTS, device=str(net.device)))
        net.eval()
    else:
        (folder / METRICS).unlink(missing_ok=True)
        for stale in (REFIT_WEIGHTS, REFIT_CHECKPOINT) + ((CHECKPOINT,) if force else ()):
            (folder / stale).unlink(missing_ok=True)
        result = fit(
            net, split, profile.gnn.train, profile.seed, checkpoint=folder / CHECKPOINT, key=key, progress=progress
        )
        valid = evaluate_gnn(net, split, "valid", TEST_KS, exclude_history=profile.gnn.train.exclude_history)
        weights = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        atomic_write_safetensors(folder / WEIGHTS, weights, metadata={"model": name, "config_hash": key})
        with atomic_path(folder / CURVES) as tmp:
            result.curves.to_csv(tmp, index=False)
        rec = {
            "model": name,
            "config_hash": key,
            "seed": profile.seed,
            "valid": valid,
            "weights_sha256": sha256_file(folder / WEIGHTS),
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "stopped_early": result.stopped_early,
            "train_seconds": result.train_seconds,
            "seconds_per_epoch": result.seconds_per_epoch,
            "resumed_from": result.resumed_from,
            "n_edges": graph.n_edges,
            "n_parameters": sum(p.numel() for p in net.parameters()),
            "config": {"train": profile.to_dict()["gnn"]["train"], name: profile.to_dict()["gnn"][name]},
        }
        (folder / CHECKPOINT).unlink(missing_ok=True)
    if rec.get("test_graph") != profile.gnn.train.test_graph:
        _score_test(data, name, net, rec, progress)
    return net


def _score_test(data: RunData, name: str, net: GraphRecommender, rec: dict[str, Any], progress: bool | None) -> None:
    """Fill ``rec``'s test metrics for the profile's test_graph (plus the cheap ``train`` and ``propagate``
    ones) and write metrics.json (last: it marks the model finished)."""
    profile, split = data.profile, data.split
    mode = profile.gnn.train.test_graph
    exclude = profile.gnn.train.exclude_history  # test history = train + validation items (split.history)
    by_graph = dict(rec.get("test_by_graph", {}))
    for option in dict.fromkeys(("train", "propagate", mode)):
        if option not in by_graph:
            test_net = _test_model(data, name, net, option, int(rec["best_epoch"]), progress)
            by_graph[option] = evaluate_gnn(test_net, split, "test", TEST_KS, exclude_history=exclude)
    rec.update(
        test=by_graph[mode],
        test_graph=mode,
        test_by_graph=by_graph,
        test_graph_edges=int(InteractionGraph.from_split(split, net.n_items, "test").n_edges),
    )
    if mode == "refit":
        rec["refit"] = json.loads(load_metadata(model_dir(data, name) / REFIT_WEIGHTS)["refit"])
    atomic_write_json(model_dir(data, name) / METRICS, rec)


def gnn_for_target(
    source: Session | RunData, model: str | None = None, target: str = "test", progress: bool | None = None
) -> GraphRecommender:
    """The GNN that scores ``target``'s item (eval mode).

    ``"valid"``: :func:`train_gnn`'s model (training split only). ``"test"``: the model of
    ``gnn.train.test_graph`` — ``"propagate"``: the trained embeddings over the train + validation graph;
    ``"refit"``: a model retrained on train + validation for the validation-chosen ``best_epoch``
    (cached in ``<model>/refit.safetensors``); ``"train"``: :func:`train_gnn`'s model itself.
    """
    data = load_run_data(source)
    name = _check_name(data, model)
    net = train_gnn(data, name, progress=progress)
    if target == "valid":
        return net
    if target != "test":
        raise AgrecError(f"target must be 'valid' or 'test', got {target!r}")
    best_epoch = int(read_metrics(data, name)["best_epoch"])  # type: ignore[index]  # train_gnn wrote it
    return _test_model(data, name, net, data.profile.gnn.train.test_graph, best_epoch, progress)


def _test_model(
    data: RunData, name: str, net: GraphRecommender, option: str, best_epoch: int, progress: bool | None
) -> GraphRecommender:
    if option not in TEST_GRAPHS:
        raise ConfigError(f"gnn.train.test_graph must be one of {list(TEST_GRAPHS)}, got {option!r}")
    if option == "train":
        return net
    graph = InteractionGraph.from_split(data.split, data.ds.n_items, "test")
    if option == "propagate":
        return net.on_graph(graph)
    return _refit(data, name, graph, best_epoch, progress)


def _refit(data: RunData, name: str, graph: InteractionGraph, epochs: int, progress: bool | None) -> GraphRecommender:
    """Retrain ``name`` from the same seed on ``graph`` (train + validation) for ``epochs`` (the best epoch
    chosen on validation) epochs; cached in ``<model>/refit.safetensors``."""
    profile = data.profile
    folder = model_dir(data, name)
    key = _refit_key(data, name, epochs)
    net = _build(data, name, graph)
    path = folder / REFIT_WEIGHTS
    try:
        if path.is_file() and load_metadata(path).get("config_hash") == key:
            net.load_state_dict(load_file(path, device=str(net.device)))
            return net.eval()
    except Exception:  # noqa: BLE001  a damaged refit file (safetensors raises its own types) is refitted
        net = _build(data, name, graph)
    result = fit_epochs(
        net, profile.gnn.train, profile.seed, epochs, checkpoint=folder / REFIT_CHECKPOINT, key=key, progress=progress
    )
    info = {
        "epochs": result.epochs_run,
        "train_seconds": result.train_seconds,
        "n_edges": graph.n_edges,
        "resumed_from": result.resumed_from,
    }
    weights = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    atomic_write_safetensors(path, weights, metadata={"model": name, "config_hash": key, "refit": json.dumps(info)})
    (folder / REFIT_CHECKPOINT).unlink(missing_ok=True)
    return net


def load_metadata(path: Path) -> dict[str, str]:
    """The string metadata of a safetensors file."""
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def run_gnn_stage(
    source: Session | RunData, force: bool = False, progress: bool | None = None
) -> dict[str, GraphRecommender]:
    """Train every GNN the profile lists (``gnn.models`` and ``gnn.model``); mark the stage done.

    Returns ``{name: model}`` in eval mode, in the profile's order.
    """
    data = load_run_data(source)  # first, so that the stage's status sees the current data stage
    profile, run = data.profile, data.run
    names = profile.gnn.stage_models()
    key = config_key(profile, STAGE)
    current = not force and run.is_current(STAGE, key, profile)
    if not current:  # as every stage: no record while it recomputes, no leftovers of a killed run
        run.invalidate(STAGE)
    models = {name: train_gnn(data, name, force=force, progress=progress) for name in names}
    if not current:
        run.mark_done(STAGE, key, profile, models={n: read_metrics(data, n) for n in names})
    return models


def _weights_intact(path: Path, metrics: dict[str, Any]) -> bool:
    """The weights file exists and has the sha256 its metrics record lists (a damaged file is retrained,
    never loaded)."""
    return sha256_matches(path, metrics.get("weights_sha256"))


def results_table(ctx: RunContext, models: list[str] | None = None) -> pd.DataFrame:
    """One row per trained GNN: test HR@5/10, NDCG@5/10 (the ablation's "GNN only" rows), the
    validation score it was selected on, and its training cost."""
    names = models if models is not None else ctx.profile.gnn.stage_models()
    metric = ctx.profile.gnn.train.valid_metric
    rows = []
    for name in names:
        rec = read_metrics(ctx, name)  # "test": the test-time model of gnn.train.test_graph
        if rec is None:
            raise AgrecError(f"GNN {name!r} has not been trained with this configuration: run train_gnn first")
        rows.append(
            {
                "model": name,
                **{k: rec["test"][k] for k in ("HR@5", "NDCG@5", "HR@10", "NDCG@10")},
                f"valid {metric}": rec["valid"][metric],
                "best epoch": rec["best_epoch"],
                "epochs": rec["epochs_run"],
                "s/epoch": rec["seconds_per_epoch"],
            }
        )
    return pd.DataFrame(rows)


# Version of results/gnn.json's layout (gnn_results; see agrec.run.report).
RESULTS_FORMAT = 1
RESULT_KEYS = ("valid", "test", "best_epoch", "epochs_run", "seconds_per_epoch", "train_seconds")


def gnn_results(ctx: RunContext, models: list[str], gnn_only: pd.DataFrame) -> dict[str, Any]:
    """What ``report.record("gnn", …, RESULTS_FORMAT)`` stores: the profile's main GNN, each trained model's
    validation/test metrics and training cost (its metrics record), and the "GNN only" table
    (:func:`results_table`)."""
    models_out = {}
    for name in models:
        rec = read_metrics(ctx, name)
        if rec is None:
            raise AgrecError(f"GNN {name!r} has no metrics record of this profile: run the gnn stage first")
        models_out[name] = {k: rec[k] for k in RESULT_KEYS}
    return {"model": ctx.profile.gnn.model, "models": models_out, "gnn_only": gnn_only.to_dict(orient="records")}
