"""Training loop of the GNNs: BPR epochs, validation every few epochs, early stopping, resumable.

- Model selection uses the **validation** item only (NDCG@10 by default); the test items are never
  read here, so changing them cannot change training (tests/gnn/test_gnn_trainer.py checks this).
- Every source of randomness of epoch ``e`` (shuffling, negatives, SGL's views, XSimGCL's noise)
  is derived from ``(seed, e)``. A run interrupted after an evaluation and resumed from its
  checkpoint therefore ends bit-identical to an uninterrupted one.
- The checkpoint (model, optimiser, best weights, curves, early-stopping counters) is written
  atomically after every evaluation and loaded with ``torch.load(weights_only=True)``.
- :func:`fit_epochs` trains a fixed number of epochs without selection: the ``"refit"`` on train +
  validation for the best epoch that :func:`fit` chose (``gnn.train.test_graph``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from agrec.progress import Task

from agrec.data.split import LeaveOneOutSplit
from agrec.errors import AgrecError
from agrec.gnn.base import GraphRecommender
from agrec.gnn.config import GNNTrainConfig
from agrec.gnn.evaluate import evaluate_gnn
from agrec.gnn.sampler import bpr_batches
from agrec.io import atomic_path


@dataclass
class FitResult:
    """What :func:`fit` reports; the model itself holds the best weights afterwards."""

    best_epoch: int  # 1-based epoch of the best validation score
    best_valid: dict[str, float]  # validation metrics at that epoch
    epochs_run: int
    stopped_early: bool
    train_seconds: float  # optimisation time only (no evaluation), summed over epochs
    curves: pd.DataFrame  # one row per epoch: loss parts, seconds, validation metrics
    resumed_from: int | None = None  # the epoch a checkpoint was resumed from, if any

    @property
    def seconds_per_epoch(self) -> float:
        return self.train_seconds / max(self.epochs_run, 1)


def epoch_random(seed: int, epoch: int, device: torch.device) -> tuple[np.random.Generator, torch.Generator]:
    """The NumPy and torch generators of one epoch, a pure function of ``(seed, epoch)``."""
    rng = np.random.default_rng([seed, epoch])
    torch_seed = int(np.random.SeedSequence([seed, epoch, 1]).generate_state(1, np.uint64)[0] >> 1)
    return rng, torch.Generator(device=device).manual_seed(torch_seed)


def fit(
    model: GraphRecommender,
    split: LeaveOneOutSplit,
    cfg: GNNTrainConfig,
    seed: int,
    checkpoint: Path | None = None,
    key: str = "",
    progress: bool | None = None,
    on_evaluate: Callable[[int, dict[str, float]], None] | None = None,
) -> FitResult:
    """Train ``model`` on its graph (the training split) and leave the best weights in it (eval mode).

    Args:
        split: only ``split.train`` (through the model's graph) and ``split.valid`` are used.
        cfg: optimisation and early-stopping settings.
        seed: the run's seed; epoch ``e`` draws from ``(seed, e)``.
        checkpoint: file for resumable state; an existing one written with the same ``key`` is
            resumed, one with another key is ignored (and overwritten).
        key: identifies the configuration (model, data, training, seed) of the checkpoint.
        progress: show a tqdm bar (default ``cfg.progress``).
        on_evaluate: called as ``on_evaluate(epoch, valid_metrics)`` after each evaluation and
            checkpoint (lets a caller stop or inspect a run).
    """
    device = model.device
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    ks = tuple(sorted({5, 10, int(cfg.valid_metric.split("@")[1])}))
    state: dict[str, Any] = {
        "epoch": 0,
        "best_epoch": 0,
        "best_score": -math.inf,
        "best_valid": {},
        "bad_evals": 0,
        "rows": [],
        "train_seconds": 0.0,
        "best_state": None,
    }
    resumed_from = None
    if checkpoint is not None and checkpoint.is_file():
        saved = torch.load(checkpoint, map_location=device, weights_only=True)
        if saved.get("key") == key:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            state = saved["state"]
            resumed_from = state["epoch"]

    done = state["epoch"] >= cfg.epochs or state["bad_evals"] >= cfg.patience
    bar = tqdm(
        total=cfg.epochs,
        initial=state["epoch"],
        desc=f"{model.name}",
        mininterval=1.0,
        disable=not (cfg.progress if progress is None else progress),
        unit="epoch",
    )
    task = Task(model.name, cfg.epochs, "epoch", initial=state["epoch"])  # the CLI's view (agrec.progress)
    try:
        while not done:
            epoch = state["epoch"]  # 0-based index of the epoch about to run
            row = train_epoch(model, optimizer, cfg.batch_size, seed, epoch)
            state["train_seconds"] += row["seconds"]
            state["epoch"] = epoch + 1
            bar.update(1)
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                valid = evaluate_gnn(model, split, "valid", ks, exclude_history=cfg.exclude_history)
                row.update({f"valid_{k}": v for k, v in valid.items()})
                score = valid[cfg.valid_metric]
                if score > state["best_score"]:
                    state.update(
                        best_score=score,
                        best_epoch=epoch + 1,
                        best_valid=valid,
                        bad_evals=0,
                        best_state={k: v.detach().clone() for k, v in model.state_dict().items()},
                    )
                else:
                    state["bad_evals"] += 1
                state["rows"].append(row)
                done = state["epoch"] >= cfg.epochs or state["bad_evals"] >= cfg.patience
                if checkpoint is not None:
                    _save_checkpoint(checkpoint, key, model, optimizer, state)
                bar.set_postfix(
                    {
                        "loss": f"{row['loss']:.4f}",
                        f"valid {cfg.valid_metric}": f"{score:.4f}",
                        "best": f"{state['best_score']:.4f}@{state['best_epoch']}",
                    }
                )
                shown: dict[str, Any] = {"loss": row["loss"], f"valid_{cfg.valid_metric}": score}
                task.update(epoch + 1, milestone=True, **shown)
                if on_evaluate is not None:
                    on_evaluate(epoch + 1, valid)
            else:
                state["rows"].append(row)
                bar.set_postfix({"loss": f"{row['loss']:.4f}"})
                task.update(epoch + 1, milestone=True, loss=row["loss"])
    finally:
        bar.close()
        task.close(best_epoch=state["best_epoch"])

    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    model.eval()
    return FitResult(
        best_epoch=state["best_epoch"],
        best_valid=dict(state["best_valid"]),
        epochs_run=state["epoch"],
        stopped_early=state["epoch"] < cfg.epochs,
        train_seconds=state["train_seconds"],
        curves=pd.DataFrame(state["rows"]),
        resumed_from=resumed_from,
    )


def train_epoch(
    model: GraphRecommender, optimizer: torch.optim.Optimizer, batch_size: int, seed: int, epoch: int
) -> dict[str, float]:
    """One BPR epoch (0-based index ``epoch``) over every edge of ``model.graph``; all of its randomness
    comes from ``(seed, epoch)``. Returns the curve row: ``epoch`` (1-based), mean loss parts, ``seconds``."""
    rng, gen = epoch_random(seed, epoch, model.device)
    model.train()
    t0 = time.perf_counter()
    model.start_epoch(gen, rng)
    sums: dict[str, float] = {}
    n_batches = 0
    for batch in bpr_batches(model.graph, batch_size, rng, device=model.device):
        loss = model.calculate_loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
        for name, value in model.loss_parts.items():
            sums[name] = sums.get(name, 0.0) + value
        n_batches += 1
    seconds = time.perf_counter() - t0
    return {"epoch": epoch + 1, **{k: v / max(n_batches, 1) for k, v in sums.items()}, "seconds": seconds}


def fit_epochs(
    model: GraphRecommender,
    cfg: GNNTrainConfig,
    seed: int,
    epochs: int,
    checkpoint: Path | None = None,
    key: str = "",
    progress: bool | None = None,
) -> FitResult:
    """Train ``model`` on its graph for exactly ``epochs`` epochs and keep the last weights (eval mode).

    The ``"refit"`` test-time option: the graph holds train + validation interactions, so no held-out
    item is left to select on; ``epochs`` is the best epoch that :func:`fit` chose on validation. The
    optimiser and epoch randomness are :func:`fit`'s (same ``seed`` -> same per-epoch draws), so on the
    training graph ``fit_epochs(…, epochs=best_epoch)`` ends with exactly :func:`fit`'s best weights.
    The checkpoint (same format, written every ``cfg.eval_every`` epochs) makes it resumable.
    """
    if epochs <= 0:
        raise AgrecError(f"fit_epochs: epochs must be > 0, got {epochs}")
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    state: dict[str, Any] = {"epoch": 0, "rows": [], "train_seconds": 0.0}
    resumed_from = None
    if checkpoint is not None and checkpoint.is_file():
        saved = torch.load(checkpoint, map_location=model.device, weights_only=True)
        if saved.get("key") == key and saved["state"]["epoch"] <= epochs:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            state = saved["state"]
            resumed_from = state["epoch"]
    bar = tqdm(
        total=epochs,
        initial=state["epoch"],
        desc=f"{model.name} refit",
        mininterval=1.0,
        disable=not (cfg.progress if progress is None else progress),
        unit="epoch",
    )
    try:
        while state["epoch"] < epochs:
            row = train_epoch(model, optimizer, cfg.batch_size, seed, state["epoch"])
            state["rows"].append(row)
            state["train_seconds"] += row["seconds"]
            state["epoch"] += 1
            bar.update(1)
            bar.set_postfix({"loss": f"{row['loss']:.4f}"})
            if checkpoint is not None and (state["epoch"] % cfg.eval_every == 0 or state["epoch"] == epochs):
                _save_checkpoint(checkpoint, key, model, optimizer, state)
    finally:
        bar.close()
    model.eval()
    return FitResult(
        best_epoch=epochs,
        best_valid={},
        epochs_run=state["epoch"],
        stopped_early=False,
        train_seconds=state["train_seconds"],
        curves=pd.DataFrame(state["rows"]),
        resumed_from=resumed_from,
    )


def _save_checkpoint(
    path: Path, key: str, model: GraphRecommender, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    with atomic_path(path) as tmp:
        torch.save({"key": key, "model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": state}, tmp)
