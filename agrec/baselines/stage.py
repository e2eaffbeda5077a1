"""Cached SASRec training under ``<run>/baselines/sasrec/`` and the scorer it yields.

Layout:

    weights.safetensors   the best (validation NDCG@10) weights
    curves.csv            per epoch: loss, seconds, validation metrics
    metrics.json          valid + test metrics, timing, config and its hash (written last)
    resume.pt             while training: the state after the last finished epoch, under the key below; an
                          interrupted training continues from it (exactly), and it is removed once metrics.json
                          is written

The key hashes the ``data`` section, ``baselines.sasrec`` (without where it runs and whether a bar is shown)
and the seed; a folder whose ``metrics.json`` carries the current key is reused (:func:`is_reusable`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from safetensors.torch import load_file

import agrec
from agrec.baselines.sasrec import SASRec
from agrec.baselines.scorer import SASRecScorer, evaluate_sasrec
from agrec.baselines.trainer import fit
from agrec.data.stage import RunData, load_run_data
from agrec.devices import resolve_device
from agrec.errors import AgrecError
from agrec.fingerprint import sha256_file, sha256_matches, short_hash
from agrec.io import atomic_path, atomic_write_json, atomic_write_safetensors
from agrec.run.session import RunContext, Session

STAGE, MODEL = "baselines", "sasrec"
WEIGHTS, CURVES, METRICS, RESUME = "weights.safetensors", "curves.csv", "metrics.json", "resume.pt"
KS = (5, 10, 20)


def sasrec_key(ctx: RunContext) -> str:
    """Hash of what the trained SASRec depends on: ``data`` (section and the data stage's artefacts),
    ``baselines.sasrec`` (keyed form: less its runtime keys), seed, agrec version."""
    d = ctx.profile.key_dict()
    payload = {
        "data": d["data"],
        "sasrec": d["baselines"]["sasrec"],
        "seed": ctx.profile.seed,
        "data_digest": ctx.run.digest("data"),
        "agrec": agrec.__version__,
    }
    return short_hash(payload)


def sasrec_dir(ctx: RunContext) -> Path:
    return ctx.run.root / STAGE / MODEL


def read_metrics(ctx: RunContext) -> dict[str, Any] | None:
    """The metrics record of SASRec trained with this configuration, else None."""
    path = sasrec_dir(ctx) / METRICS
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # absent or damaged: retrained
    return rec if isinstance(rec, dict) and rec.get("config_hash") == sasrec_key(ctx) else None


def is_reusable(ctx: RunContext) -> bool:
    """The reuse check, in one place: the metrics record (written last) carries the current key, and the
    weights are there with the sha256 that record lists (a damaged file is retrained, never loaded)."""
    rec = read_metrics(ctx)
    return rec is not None and sha256_matches(sasrec_dir(ctx) / WEIGHTS, rec.get("weights_sha256"))


def read_curves(ctx: RunContext) -> pd.DataFrame:
    """Training curves of the finished SASRec (one row per epoch)."""
    path = sasrec_dir(ctx) / CURVES
    if not path.is_file():
        raise AgrecError(f"no SASRec training curves at {path}: run train_sasrec first")
    return pd.read_csv(path)


def train_sasrec(source: Session | RunData, force: bool = False, progress: bool | None = None) -> SASRecScorer:
    """Return the trained SASRec as a scorer (``score_users(users, "valid" | "test")``).

    Reuses ``<run>/baselines/sasrec/`` when it was produced by the same configuration; otherwise trains on the
    training split, selects the epoch on validation, evaluates once on test and writes weights, curves and
    metrics (metrics last). ``source``: the run's session, or its :class:`~agrec.data.stage.RunData` when the
    caller has loaded the data stage already.
    """
    data = load_run_data(source)
    profile, ds, split = data.profile, data.ds, data.split
    cfg = profile.baselines.sasrec
    model = SASRec(cfg, ds.n_items, seed=profile.seed).to(resolve_device(cfg.device, "baselines.sasrec.device"))
    folder = sasrec_dir(data)
    if not force and is_reusable(data):
        model.load_state_dict(load_file(folder / WEIGHTS, device=str(model.device)))
        return SASRecScorer(model.eval(), split)

    folder.mkdir(parents=True, exist_ok=True)
    (folder / METRICS).unlink(missing_ok=True)
    if force:
        (folder / RESUME).unlink(missing_ok=True)
    key = sasrec_key(data)
    scorer = SASRecScorer(model, split)
    result = fit(
        model,
        split,
        cfg,
        profile.seed,
        progress=progress,
        evaluate=lambda m: evaluate_sasrec(scorer, "valid", KS, cfg.exclude_history),
        checkpoint=folder / RESUME,
        key=key,
    )
    valid = evaluate_sasrec(scorer, "valid", KS, cfg.exclude_history)
    test = evaluate_sasrec(scorer, "test", KS, cfg.exclude_history)

    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_safetensors(folder / WEIGHTS, weights, metadata={"model": MODEL, "config_hash": key})
    with atomic_path(folder / CURVES) as tmp:
        result.curves.to_csv(tmp, index=False)
    atomic_write_json(
        folder / METRICS,
        {
            "model": MODEL,
            "config_hash": key,
            "seed": profile.seed,
            "valid": valid,
            "test": test,
            "weights_sha256": sha256_file(folder / WEIGHTS),
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "stopped_early": result.stopped_early,
            "train_seconds": result.train_seconds,
            "seconds_per_epoch": result.seconds_per_epoch,
            "n_windows": result.n_windows,
            "n_targets": result.n_targets,
            "n_parameters": sum(p.numel() for p in model.parameters()),
            "config": profile.to_dict()["baselines"]["sasrec"],
        },
    )
    (folder / RESUME).unlink(missing_ok=True)  # the result is stored: the training state is no longer needed
    return scorer
