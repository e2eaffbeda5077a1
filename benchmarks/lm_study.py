"""What makes the generative LM better per minute of CPU: a study of the tiny Llama on one dataset.

    python benchmarks/lm_study.py --config configs/instruments-cpu.yaml                 # every point
    python benchmarks/lm_study.py --config configs/instruments-cpu.yaml --points base wide
    python benchmarks/lm_study.py --report                                               # table + figure only
    python benchmarks/lm_study.py --config configs/games-cpu-collab-distill.yaml --set seed=2025 --points "epochs 12"
    python benchmarks/lm_study.py --config configs/games-cpu-collab-distill.yaml --set seed=2025 --points "epochs 12" \
        --reread 10000 --against runs/Games/cpu-collab-distill/seeds/2025      # the comparison, on unselected users

``--set KEY=VALUE`` changes the profile under every point (e.g. another seed, to reuse that seed's trained SASRec
with ``--teacher-from``); such a point is its own entry, ``<point> [KEY=VALUE, ...]``, trained in its own folder.

Each point is the profile's ``lm`` stage with a few keys overridden (``POINTS`` below), trained in a fresh
process (so that its peak RSS is its own) into ``runs/lm-study/<dataset>/<point>`` with ``lm.select: ndcg``:
after every epoch the LM alone decodes the same ``lm.select_users`` validation users (trie-constrained beam
search, the profile's seed draws them) and the stage keeps the epoch with the best validation NDCG@10.
Selection sees validation only; nothing here reads a test item. Every point has a stated budget: its epochs
(with ``lm.patience`` where it says so), the same data and the same two threads.

The "base" point can instead be read from a run of the profile itself (``--base-from <run folder>``): its LM is
the base point's training (``lm.select`` only picks a checkpoint, it changes no weight), so each of its epoch
checkpoints is decoded here with the same selection (the same users, beams and protocol) instead of training
again. The run must have kept every epoch's checkpoint (``lm.keep_checkpoints: 0``, the default) and its lm
stage must be current for the profile; its stage minutes are the run's plus the decoding done here.

The 2,048 users that pick each point's epoch also score it, so the table's validation column carries the
selection's optimism and a noise of a few percent. ``--reread USERS --against RUN`` is the comparison: the kept LM of
each point and of a reference run (the profile's own run under the same ``--set``, whose LM the points vary) decode
``USERS`` validation users outside every selection sample (:func:`agrec.decode.evaluate.unselected_users`), with
paired tests; the report prints it beside the table. Nothing there reads a test item either.

A finished point is not retrained: its run folder's stage record makes ``agrec.lm.train`` return at once
(the usual content-keyed reuse), and this script reads the record again. Results go to
``benchmarks/results/lm_study_<dataset>.json``; ``--report`` writes ``benchmarks/results/lm_study.md`` and
``benchmarks/results/lm_study.png`` (validation NDCG@10 against parameters and against training minutes, per
dataset) from every ``lm_study_*.json`` there.

Timing is wall time of the training steps on a shared machine: compare points of one run, not across runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from agrec.io import atomic_write_json
from agrec.run.launch import add_set_option, parse_sets

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _collaborative_codes(n_levels: int) -> dict[str, object]:
    """The shipped Games LM (item embedding, item dropout 0.5) on codes quantised from the training interactions:
    ``n_levels`` x 256 by residual k-means, LC-Rec's balanced last level, duplicates moved to a free last code."""
    return {
        "lm.tiny.item_embedding": True,
        "lm.tiny.item_dropout": 0.5,
        "semantic_ids.use_given_codes": False,
        "semantic_ids.encoder": "collaborative",
        "semantic_ids.method": "rkmeans",
        "semantic_ids.rqvae.n_levels": n_levels,
        "semantic_ids.rqvae.sinkhorn_epsilon": 0.003,
        "semantic_ids.dedup": "reassign",
    }


# twice the shipped 4 x 128 LM's width: hidden 256, 8 heads (every head still 32 wide), intermediate 4 x hidden
WIDE: dict[str, object] = {
    "lm.tiny.hidden_size": 256,
    "lm.tiny.intermediate_size": 1024,
    "lm.tiny.num_heads": 8,
    "lm.tiny.num_kv_heads": 8,
}

# Every point: the profile's lm block plus these keys. "base" is the shipped CPU profile's LM (4 x 128, 8 epochs,
# lr 1e-3), selected on validation NDCG@10 instead of taken at the last epoch.
COMMON = {"lm.select": "ndcg", "lm.select_users": 2048, "lm.progress": False, "lm.keep_checkpoints": 2}
POINTS: dict[str, dict[str, object]] = {
    "base": {},
    "epochs 16": {"lm.epochs": 16, "lm.patience": 3},
    # half as many epochs again, on the same cosine schedule stretched: where the validation curve still rises at
    # the profile's last epoch (Games, distilled), is it the schedule's end or the epochs that stop it?
    "epochs 12": {"lm.epochs": 12},
    # the distillation's two knobs (defaults λ 0.5, T 1, never tuned), under a profile that distils: a larger
    # share of SASRec's soft target against the LM's overfitting of its one-hot codes, or a softer teacher
    "distill weight 0.8": {"lm.distill_weight": 0.8},
    "distill temperature 2": {"lm.distill_temperature": 2.0},
    # a sharper teacher: T = 2 trailed T = 1 by more than the noise over its first three epochs (Games), so the
    # other side; with the T² scaling its soft gradient is half as large, concentrated on the teacher's top items
    "distill temperature 0.5": {"lm.distill_temperature": 0.5},
    # ranking-side distillation: the LM beats its teacher's likelihood of the true item yet ranks below it on the
    # rarer targets (benchmarks/teacher_nll.py), and the observed path trains one conditional per level; 16 off-path
    # prefixes per row (rows average 22 tokens on Games) distil the conditionals beam search ranks the rivals by
    "distill branch tokens 16": {"lm.distill_branch_tokens": 16},
    # twice the dose: 16 re-read +1.4 % over the observed path alone (p = .44), level; does more off-path mass move it
    "distill branch tokens 32": {"lm.distill_branch_tokens": 32},
    # under a profile with item vectors and a teacher: those vectors start from the teacher's item embeddings
    "item init from teacher": {"lm.tiny.item_init": "teacher"},
    # LC-Rec's 20 items of history against SASRec's 50: on Games the LM's gap to SASRec is largest for the users
    # with more than 20 (benchmarks/gap_by_history.py); 49 is the most a SASRec teacher of 50 can read with the target
    "history 49": {"lm.max_history": 49},
    "lr 3e-3": {"lm.lr": 3.0e-3},
    "label smoothing 0.1": {"lm.label_smoothing": 0.1},
    "wd 0.1 + attn dropout 0.1": {"lm.weight_decay": 0.1, "lm.tiny.attention_dropout": 0.1},
    "deep 8 x 128": {"lm.tiny.num_layers": 8},
    "narrow 4 x 64": {"lm.tiny.hidden_size": 64, "lm.tiny.intermediate_size": 256},
    "wide 4 x 256": dict(WIDE),
    "wide 4 x 256, epochs 16": {
        **WIDE,
        "lm.epochs": 16,
        "lm.patience": 3,
        "lm.weight_decay": 0.1,
        "lm.tiny.attention_dropout": 0.1,
    },
    "beam 40 at selection": {"lm.select_beam_size": 40},
    "dropout 0.1": {"lm.tiny.dropout": 0.1},
    # one learned vector per item at the last code of each history item (agrec/lm/item_embedding.py): SASRec's
    # item identity beside the semantic codes; + items x 128 parameters (2.2 M on Games), the same compute per token
    "item embedding": {"lm.tiny.item_embedding": True},
    # the same, each item vector left out with probability 0.5 while training: the plain one overfits on Instruments
    "item embedding, item dropout 0.5": {"lm.tiny.item_embedding": True, "lm.tiny.item_dropout": 0.5},
    "dropout 0.1, epochs 16": {"lm.tiny.dropout": 0.1, "lm.epochs": 16, "lm.patience": 3},
    # per minute: twice the samples per step (half the optimizer steps, fuller matmuls on two cores), the learning
    # rate scaled by sqrt(2) as for Adam; the same epochs, so the same samples seen
    "item embedding, item dropout 0.5, batch 64": {
        "lm.tiny.item_embedding": True,
        "lm.tiny.item_dropout": 0.5,
        "lm.batch_size": 64,
        "lm.lr": 1.4e-3,
    },
    # the minutes the batch-64 point saves spent on twice the epochs (a longer cosine schedule), stopped early on
    # validation NDCG@10
    "item embedding, item dropout 0.5, batch 64, epochs 16": {
        "lm.tiny.item_embedding": True,
        "lm.tiny.item_dropout": 0.5,
        "lm.batch_size": 64,
        "lm.lr": 1.4e-3,
        "lm.epochs": 16,
        "lm.patience": 3,
    },
    # the shipped Games LM with softened targets: does a regulariser on the output side help where the item
    # vectors start to memorise after ~8 epochs?
    "item embedding, item dropout 0.5, label smoothing 0.1": {
        "lm.tiny.item_embedding": True,
        "lm.tiny.item_dropout": 0.5,
        "lm.label_smoothing": 0.1,
    },
    # the shipped Games LM with ten times the default weight decay (0.01): AdamW decays every matrix, the item vectors
    # included, so a rare item's vector is pulled towards zero between its few updates; does that curb the
    # memorisation seen after ~8 epochs without hurting the frequent items?
    "item embedding, item dropout 0.5, weight decay 0.1": {
        "lm.tiny.item_embedding": True,
        "lm.tiny.item_dropout": 0.5,
        "lm.weight_decay": 0.1,
    },
    # the shipped Games LM with a dense next-item term beside the codes' NLL (agrec/lm/loss.py): the final hidden
    # state scores all items against the (tied) item vectors, SASRec's full-softmax objective as a training signal;
    # the LM still recommends by generating codes. + one [positions x items] product per step, no new parameters
    "item embedding, item dropout 0.5, item loss 1": {
        "lm.tiny.item_embedding": True,
        "lm.tiny.item_dropout": 0.5,
        "lm.tiny.item_loss": 1.0,
    },
    # three times the weight: does a stronger dense term move the generated codes, not only the head?
    "item embedding, item dropout 0.5, item loss 3": {
        "lm.tiny.item_embedding": True,
        "lm.tiny.item_dropout": 0.5,
        "lm.tiny.item_loss": 3.0,
    },
    # the shipped Games LM on codes quantised from the training interactions instead of the authors' text codes
    # (agrec/semantic_ids/collaborative.py): items that share users share prefixes, so the first tokens say what the
    # history predicts. 3 levels x 256 (65,536 two-level prefixes already exceed Games' 16,859 items; one decoding
    # step fewer than the given 4 + 1), balanced last level (LC-Rec's Sinkhorn epsilon), duplicates moved to a free
    # last code. Two changes at once (what the codes say, how many there are): the 4 x 256 point below separates them
    "item embedding, item dropout 0.5, collaborative codes 3 x 256": _collaborative_codes(3),
    # both: the collaborative codes and the dense next-item term
    "item embedding, item dropout 0.5, collaborative codes 3 x 256, item loss 1": {
        **_collaborative_codes(3),
        "lm.tiny.item_loss": 1.0,
    },
    # the attribution of the 3 x 256 point: collaborative codes at the given codes' 4 levels
    "item embedding, item dropout 0.5, collaborative codes 4 x 256": _collaborative_codes(4),
    # the collaborative-code LM with more of its item vectors left out while training (0.7 instead of 0.5): the wide
    # point overfits after epoch 5, so does a stronger regulariser on the memorising item vectors help the narrow one?
    "item embedding, item dropout 0.7, collaborative codes 3 x 256": {
        **_collaborative_codes(3),
        "lm.tiny.item_dropout": 0.7,
    },
    # the collaborative-code LM at twice the width (hidden 256, 8 heads; the item vectors grow with it): on Games the
    # collaborative codes cut the training minutes to a third, which leaves the budget for a larger model
    "item embedding, item dropout 0.5, collaborative codes 3 x 256, wide 4 x 256": {
        **_collaborative_codes(3),
        **WIDE,
    },
    # the collaborative-code LM distilled from the profile's SASRec (agrec/lm/distill.py): at each code position half
    # of the target is SASRec's next-item distribution conditioned along the observed code path. The point trains
    # its teacher first (its minutes are in the stage's), unless --teacher-from hands over one with the same key
    "item embedding, item dropout 0.5, collaborative codes 3 x 256, distilled from SASRec": {
        **_collaborative_codes(3),
        "lm.distill_teacher": "sasrec",
    },
    # the profile's LM distilled from the profile's SASRec, on the profile's codes (the Instruments check of the point
    # above: the same mechanism, untouched, on a dataset where the LM was already close to SASRec)
    "distilled from SASRec": {"lm.distill_teacher": "sasrec"},
    "wide 4 x 256, dropout 0.1, epochs 16": {
        **WIDE,
        "lm.tiny.dropout": 0.1,
        "lm.epochs": 16,
        "lm.patience": 3,
    },
}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-").replace("--", "-")


def _yaml_value(v: object) -> str:
    return json.dumps(v)  # --set parses values as YAML, and JSON scalars are YAML


def _epoch_curves(stage_dir: Path):
    """An lm stage folder's training minutes at the end of each epoch (``[epoch - 1]``) and its per-epoch
    evaluation rows (``val_curve.csv``)."""
    import pandas as pd

    from agrec.lm.stage import LOSS_CSV, VAL_CSV

    steps, evals = (pd.read_csv(stage_dir / f) for f in (LOSS_CSV, VAL_CSV))
    return steps.groupby("epoch")["train_time_s"].max().to_numpy() / 60.0, evals


def _curve_point(epoch: int, minutes, val_loss: float | None, hr: float, ndcg: float) -> dict:
    """One epoch of a point's curve, rounded as the results file keeps it."""
    return {
        "epoch": epoch,
        "train_minutes": round(float(minutes[epoch - 1]), 2),
        "val_loss": None if val_loss is None else round(float(val_loss), 4),
        "val_HR@10": round(float(hr), 4),
        "val_NDCG@10": round(float(ndcg), 4),
    }


def _point_row(
    name: str, overrides: dict, rec: dict, curve: list[dict], best: dict, stage_s: float, reused: bool, **measured
) -> dict:
    """A point's entry in the results file: its summary from the lm stage record ``rec`` and its ``curve``
    (``best``: the kept epoch's entry), the ``measured`` extras of the way it was obtained, and the commit of the
    code that ran it (run the study from a pinned worktree)."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True, capture_output=True)
    return {
        "point": name,
        "commit": commit.stdout.strip(),
        "overrides": overrides,
        "params": rec["params"]["total"],
        "epochs_trained": len(curve),
        "best_epoch": best["epoch"],
        "val_HR@10": best["val_HR@10"],
        "val_NDCG@10": best["val_NDCG@10"],
        "train_minutes": curve[-1]["train_minutes"],
        "stage_minutes": round(stage_s / 60.0, 2),
        **measured,
        "tokens_per_s": rec["tokens_per_s"],
        "reused": reused,
        "curve": curve,
    }


def point_overrides(name: str, sets: dict[str, object]) -> dict[str, object]:
    """A point's profile keys: :data:`COMMON`, then the point's own, then the study's ``--set`` (which may not
    change a key the point itself sets: the point would not be what its name says)."""
    clash = sorted(set(sets) & (set(POINTS[name]) | set(COMMON)))
    if clash:
        raise SystemExit(f"--set {', '.join(clash)}: point {name!r} sets that key itself")
    return {**COMMON, **POINTS[name], **sets}


def point_label(name: str, sets: dict[str, object], profile: str | None = None) -> str:
    """The point's entry in the results file (and, slugged, its run folder): its name, plus the profile's name
    when it is not the dataset's study profile and the ``--set`` keys it ran under, so that a point under another
    profile or seed never overwrites (nor reads as) the study profile's own."""
    tags = ([profile] if profile else []) + [f"{k}={_yaml_value(v)}" for k, v in sets.items()]
    return f"{name} [{', '.join(tags)}]" if tags else name


def _where(path: Path) -> str:
    """A run folder as the results file records it: relative to the repository where it lies inside it."""
    full = path.resolve()
    return str(full.relative_to(ROOT)) if full.is_relative_to(ROOT) else str(path)


def _config_rel(config: Path) -> str:
    return str(config.resolve().relative_to(ROOT))


def profile_tag(doc: dict, config: Path) -> str | None:
    """None when ``config`` is the results file's study profile (the first one it was run with), else the profile's
    name, which then labels its points (:func:`point_label`)."""
    rel = _config_rel(config)
    return None if doc.get("config") in (None, rel) else _profile_name(rel)


def _profile_name(config: str) -> str:
    """The ``name`` of the profile at ``config`` (relative to the repository, as the results file records it)."""
    from agrec.config import load_profile

    return load_profile(ROOT / config).name


def study_runs(dataset: str) -> Path:
    """The folder of a dataset's study points: ``runs/lm-study/<dataset>``."""
    return ROOT / "runs" / "lm-study" / dataset


def point_dir(runs: Path, label: str) -> Path:
    """A point's run folder under :func:`study_runs`, named after its label (one folder per label, so a point
    at another ``--set`` or profile never overwrites another's)."""
    return runs / _slug(label)


def run_point(
    config: Path,
    name: str,
    runs: Path,
    teacher_from: Path | None = None,
    sets: dict[str, object] | None = None,
    profile: str | None = None,
) -> dict:
    """Train one point in a child process (or find it trained) and read its stage record and curves.
    ``teacher_from``: a run folder whose trained SASRec (``baselines/sasrec``) a distilled point starts from;
    ``sets``: the study's ``--set`` keys (:func:`point_overrides`); ``profile``: :func:`profile_tag`."""
    from agrec.config import load_profile
    from agrec.lm.stage import STAGE
    from agrec.run.rundir import RunDir

    sets = sets or {}
    overrides = point_overrides(name, sets)
    label = point_label(name, sets, profile)
    run_dir = point_dir(runs, label)
    teacher = run_dir / "baselines" / "sasrec"
    # the profile may distil already (configs/games-cpu-collab-distill.yaml), or the point may ask for it
    distilled = load_profile(config, overrides).lm.distill_teacher == "sasrec"
    if teacher_from is not None and distilled and not teacher.exists():
        # a copy, not a link: the stage reuses it only if its key and weights' sha256 are this point's, and trains
        # its own otherwise (agrec.baselines.stage.is_reusable); the copy's training minutes are not in the point's
        source = teacher_from / "baselines" / "sasrec"
        if not (source / "metrics.json").is_file():
            raise SystemExit(f"--teacher-from: no trained SASRec at {source}")
        teacher.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, teacher)
        print(f"lm_study: {name}: teacher copied from {source}", flush=True)
    cmd = [sys.executable, "-m", "agrec.lm.train", "--config", str(config), "--run-dir", str(run_dir)]
    for k, v in overrides.items():
        cmd += ["--set", f"{k}={_yaml_value(v)}"]
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        raise SystemExit(f"point {name!r} failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")
    rec = RunDir(run_dir).read_record(STAGE)
    if rec is None:
        raise SystemExit(f"point {name!r}: {run_dir} has no lm stage record after training")
    minutes, evals = _epoch_curves(run_dir / STAGE)
    curve = [
        _curve_point(int(r.epoch), minutes, r.val_loss, r["val_HR@10"], r["val_NDCG@10"]) for _, r in evals.iterrows()
    ]
    # the epoch the stage kept (its unrounded validation NDCG@10): the checkpoint `--test` decodes
    kept = int(Path(rec["checkpoint"]).name.removeprefix("epoch-"))
    best = next(c for c in curve if c["epoch"] == kept)
    return _point_row(
        label,
        overrides,
        rec,
        curve,
        best,
        rec["stage_time_s"],
        reused=rec["stage_time_s"] > wall + 1.0,
        process_wall_minutes=round(wall / 60.0, 2),
        # ru_maxrss of the children so far: this point's own peak only if it is the largest yet (fresh run: it is
        # the first and only child)
        peak_rss_mib_children=round(max(peak, before) / 1024.0, 0),
    )


def base_from_run(config: Path, run_dir: Path, profile_name: str | None = None) -> dict:
    """The "base" point from a finished run of the profile: each kept epoch checkpoint decoded with the study's
    selection (:func:`agrec.lm.stage.validation_ndcg` on ``COMMON``'s users), the best kept."""
    import torch

    from agrec.data.stage import prepare_data
    from agrec.lm.stage import STAGE, _base_dir, load_bundle, resolve_codes, stage_key
    from agrec.lm.stage import validation_ndcg
    from agrec.run.lineage import config_key
    from agrec.run.session import open_session

    session = open_session(config, run_dir=run_dir, overrides={"lm.progress": False})
    profile, run = session.profile, session.run
    torch.set_num_threads(profile.pipeline.num_threads or 1)
    if POINTS["base"]:
        raise SystemExit("--base-from: the base point has overrides; a run of the profile is not its training")
    if not run.is_current(STAGE, config_key(profile, STAGE), profile, log=print):
        raise SystemExit(f"--base-from: {run.root / STAGE} is not a current lm stage of {config}")
    rec = run.read_record(STAGE)
    ds, split = prepare_data(session)
    codes = resolve_codes(session, ds.n_items, ds.item_ids)
    key = stage_key(session, codes)
    folders = sorted((run.root / STAGE / "checkpoints").glob("epoch-*"))
    epochs = [int(f.name.removeprefix("epoch-")) for f in folders]
    if epochs != list(range(1, len(epochs) + 1)) or len(epochs) != profile.lm.epochs:
        raise SystemExit(
            f"--base-from: {run.root / STAGE / 'checkpoints'} holds epochs {epochs}, not every one of "
            f"1..{profile.lm.epochs} (train with lm.keep_checkpoints: 0)"
        )
    sel = dataclasses.replace(profile.lm, select="ndcg", select_users=int(COMMON["lm.select_users"]))
    n_users = min(sel.max_users or split.n_users, split.n_users)
    minutes, evals = _epoch_curves(run.root / STAGE)
    t0 = time.perf_counter()
    curve = []
    for epoch, folder in zip(epochs, folders, strict=True):
        bundle = load_bundle(folder, profile.lm, codes, key, _base_dir(session), log=lambda s: None)
        evaluate = validation_ndcg(
            sel,
            bundle.prompt_ids,
            bundle.item_token_ids,
            split.train[:n_users],
            split.valid[:n_users],
            profile.seed,
            bundle.pad_token_id,
        )
        m = evaluate(bundle.model)
        val_loss = evals.loc[evals["epoch"] == epoch, "val_loss"]
        point = _curve_point(
            epoch, minutes, val_loss.iloc[0] if len(val_loss) else None, m["val_HR@10"], m["val_NDCG@10"]
        )
        curve.append({**point, "_ndcg": m["val_NDCG@10"]})
        print(f"lm_study: base from {run.root}: epoch {epoch}: val NDCG@10 {m['val_NDCG@10']:.4f}", flush=True)
    decode_s = time.perf_counter() - t0
    best = max(curve, key=lambda c: (c["_ndcg"], -c["epoch"]))  # the trainer's rule: the earliest best epoch
    for c in curve:
        del c["_ndcg"]
    return _point_row(
        point_label("base", {}, profile_name),
        dict(COMMON),
        rec,
        curve,
        best,
        rec["stage_time_s"] + decode_s,
        reused=False,
        from_run=str(run.root),
        from_run_source_digest=rec.get("source_digest"),
        selection_decode_minutes=round(decode_s / 60.0, 2),
    )


def study(
    config: Path,
    names: list[str],
    base_from: Path | None = None,
    teacher_from: Path | None = None,
    sets: dict[str, object] | None = None,
) -> Path:
    from agrec.config import load_profile

    sets = sets or {}
    if base_from is not None and sets:
        raise SystemExit("--base-from reads a run of the profile as it is: it takes no --set")
    profile = load_profile(config, sets)
    dataset = profile.data.dataset
    runs = study_runs(dataset)
    out = RESULTS / f"lm_study_{dataset}.json"
    doc = json.loads(out.read_text()) if out.is_file() else {"dataset": dataset, "points": {}}
    # the first profile a dataset's study ran with is its study profile; points of another carry their profile
    tag = profile_tag(doc, config)
    doc.setdefault("config", _config_rel(config))
    for row in doc["points"].values():
        row.setdefault("config", doc["config"])  # results written before points recorded their own profile
    doc.update({"machine": f"{os.cpu_count()} CPUs, {profile.pipeline.num_threads} torch threads", "common": COMMON})
    for name in names:
        print(f"lm_study: {dataset}: {name} ...", flush=True)
        if name == "base" and base_from:
            row = base_from_run(config, base_from, tag)
        else:
            row = run_point(config, name, runs, teacher_from, sets, tag)
        label = row["point"]
        if row["reused"] and label in doc["points"]:
            # the training process's measurements and code, not this quick reuse's; "reused" too, so that an entry
            # measured by a training run still says so after the point is re-read
            earlier = doc["points"][label]
            for k in ("commit", "reused", "process_wall_minutes", "peak_rss_mib_children", "test_lm_alone", "reread"):
                if k in earlier:
                    row[k] = earlier[k]
        row["config"] = _config_rel(config)
        doc["points"][label] = row
        atomic_write_json(out, doc, indent=1)
        print(
            f"lm_study: {dataset}: {label}: val NDCG@10 {row['val_NDCG@10']:.4f} (epoch {row['best_epoch']}), "
            f"{row['params']:,} params, {row['train_minutes']:.1f} train min",
            flush=True,
        )
    return out


def _study_results(config: Path, sets: dict[str, object]) -> tuple[str, Path, dict]:
    """For reading trained points: the dataset of ``config`` under ``sets``, its results file and that file's
    content; torch's threads set to the profile's."""
    import torch

    from agrec.config import load_profile

    profile = load_profile(config, sets)
    torch.set_num_threads(profile.pipeline.num_threads or 1)
    out = RESULTS / f"lm_study_{profile.data.dataset}.json"
    return profile.data.dataset, out, json.loads(out.read_text())


def lm_decode(session, split, target: str, users, bundle=None, trie=None):
    """The run's trained LM alone for ``users`` on ``target`` ("valid" or "test"): its beam search's result
    (:class:`agrec.decode.beam.DecodeResult`, ``items`` and ``scores`` ``[U, beam]``, best first) and the targets
    ``[U]``, as the decode stage's "w/o Graph" (its settings, α = 0, each user's history left out as the profile
    says). ``bundle`` / ``trie``: the run's LM and its item trie where the caller has them already (loaded and
    built here otherwise)."""
    from agrec.decode.beam import generate_items
    from agrec.decode.evaluate import build_inputs
    from agrec.decode.trie import ItemTrie
    from agrec.lm.stage import load_lm

    if bundle is None:
        bundle = load_lm(session, log=lambda s: None)
    inp = build_inputs(split, bundle.prompt_ids, target, users, session.profile.evaluation.exclude_history)
    dec = session.profile.decode
    res = generate_items(
        bundle.model,
        inp.prompts,
        trie if trie is not None else ItemTrie.build(bundle.item_token_ids),
        cfg=dataclasses.replace(dec, alpha=0.0),
        exclude=inp.exclude,
        k=dec.beam_size,
        pad_token_id=bundle.pad_token_id,
    )
    return res, inp.targets


def lm_alone(session, split, target: str, users):
    """The ranked items ``[U, beam]`` of :func:`lm_decode` and their targets ``[U]``."""
    res, targets = lm_decode(session, split, target, users)
    return res.items.numpy(), targets


def test_points(
    config: Path, names: list[str], n_users: int, references: list[Path], sets: dict[str, object] | None = None
) -> None:
    """Test HR/NDCG@5/10 of the LM alone for trained points, on ``n_users`` test users drawn with the profile's seed
    (the decode stage's beam size and protocol), beside other rows' rankings of the same users (``references``:
    decode stages' ``rankings/<row>__test.npz``, e.g. ``sasrec_only``), with paired tests. For the points the
    validation study chose: selection never reads these numbers."""
    import numpy as np

    from agrec.analysis.significance import paired_test, user_gains
    from agrec.analysis.user_alpha import Rankings
    from agrec.data.stage import load_run_data
    from agrec.decode.evaluate import validation_users
    from agrec.decode.stage import load_rankings
    from agrec.metrics import evaluate_rankings
    from agrec.run.session import open_session

    sets = sets or {}
    dataset, out, doc = _study_results(config, sets)
    refs = {}
    for path in references:  # <decode folder>/rankings/<row>__<target>.npz, read by the decode stage's reader
        row_name, _, target = path.stem.rpartition("__")
        refs[path] = Rankings(**load_rankings(path.parent.parent, row_name, target))
    tag = profile_tag(doc, config)
    for name in names:
        label = point_label(name, sets, tag)
        if label not in doc["points"]:
            raise SystemExit(f"--test: point {label!r} is not in {out}; train it first (the same --points and --set)")
        overrides = {**point_overrides(name, sets), "lm.progress": False}
        session = open_session(config, run_dir=point_dir(study_runs(dataset), label), overrides=overrides)
        split = load_run_data(session).split
        users = validation_users(split.n_users, n_users, session.profile.seed)
        t0 = time.perf_counter()
        items, targets = lm_alone(session, split, "test", users)
        row = {
            "users": len(users),
            "seconds": round(time.perf_counter() - t0, 1),
            **{k: round(v, 4) for k, v in evaluate_rankings(items, targets, [5, 10]).items()},
        }
        row["references"] = {}
        for reference, all_users in refs.items():
            ref = all_users.aligned(users)  # an AgrecError names any user it does not rank
            if not np.array_equal(ref.targets, targets):
                raise SystemExit(f"{reference}: its test targets are not this split's")
            ours, theirs = user_gains(items, targets), user_gains(ref.items, targets)
            # keyed by the rankings' row and target (e.g. "sasrec_only__test"), not by where they lay on this machine
            row["references"][reference.stem] = {
                **{m: round(float(theirs[m].mean()), 4) for m in ("HR@10", "NDCG@10")},
                **{f"p {m}": paired_test(ours[m], theirs[m], m).p_value for m in ("HR@10", "NDCG@10")},
            }
        doc["points"][label]["test_lm_alone"] = row
        print(f"lm_study: {dataset}: {label}: test (LM alone, {len(users)} users) {row}", flush=True)
        atomic_write_json(out, doc, indent=1)


def reread_points(
    config: Path, names: list[str], n_users: int, against: Path, sets: dict[str, object] | None = None
) -> None:
    """Validation HR@10 / NDCG@10 of the LM alone for trained points and for the run folder ``against`` (a run of
    the profile under the same ``--set``, whose LM the points vary), on ``n_users`` validation users that chose
    nothing (:func:`agrec.decode.evaluate.unselected_users`: outside the 2,048-user sample that picked every
    point's epoch), with paired tests against ``against`` on the same users. The selection sample scores each
    point on the users that chose its epoch, and differences of a few percent between points are inside its noise;
    this re-reading is the comparison. Validation only: no test item is read."""
    import numpy as np

    from agrec.analysis.significance import paired_test, user_gains
    from agrec.config import load_profile
    from agrec.data.stage import load_run_data
    from agrec.decode.evaluate import unselected_users
    from agrec.run.session import open_session

    sets = sets or {}
    dataset, out, doc = _study_results(config, sets)
    tag = profile_tag(doc, config)
    labels = [point_label(name, sets, tag) for name in names]
    missing = [label for label in labels if label not in doc["points"]]
    if missing:
        raise SystemExit(f"--reread: {missing} not in {out}; train them first (the same --points and --set)")
    ref_session = open_session(config, run_dir=against, overrides={**sets, "lm.progress": False})
    split = load_run_data(ref_session).split
    # the users outside the points' selection samples (the first point's: every point selects as COMMON says) ...
    users = unselected_users(load_profile(config, point_overrides(names[0], sets)), split.n_users, n_users)
    # ... and outside the reference's own
    if np.setdiff1d(users, unselected_users(ref_session.profile, split.n_users, split.n_users)).size:
        raise SystemExit(f"--against {against}: its LM chose its epoch (or α) on some of the re-read users")
    if len(users) < n_users:
        print(f"lm_study: only {len(users)} validation users chose nothing; re-reading those", flush=True)
    t0 = time.perf_counter()
    theirs = user_gains(*lm_alone(ref_session, split, "valid", users))
    print(f"lm_study: {against}: NDCG@10 {theirs['NDCG@10'].mean():.4f} ({time.perf_counter() - t0:.0f} s)")
    for name, label in zip(names, labels, strict=True):
        session = open_session(
            config, run_dir=point_dir(study_runs(dataset), label), overrides=point_overrides(name, sets)
        )
        ours = user_gains(*lm_alone(session, split, "valid", users))
        tests = {m: paired_test(ours[m], theirs[m], m) for m in ("HR@10", "NDCG@10")}
        row = {
            "users": len(users),
            "against": _where(against),
            **{m: round(float(ours[m].mean()), 4) for m in ("HR@10", "NDCG@10")},
            **{f"against {m}": round(float(theirs[m].mean()), 4) for m in ("HR@10", "NDCG@10")},
            **{f"p {m}": t.p_value for m, t in tests.items()},
        }
        doc["points"][label]["reread"] = row
        print(f"lm_study: {dataset}: {label}: re-read on {len(users)} validation users {row}", flush=True)
        atomic_write_json(out, doc, indent=1)


def _other_configs(doc: dict) -> list[str]:
    return sorted({r.get("config", doc["config"]) for r in doc["points"].values()} - {doc["config"]})


def report() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    docs = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("lm_study_*.json"))]
    if not docs:
        raise SystemExit(f"no lm_study_*.json in {RESULTS}")
    lines = ["# LM study: validation NDCG@10 of the LM alone per point (benchmarks/lm_study.py)", ""]
    fig, axes = plt.subplots(len(docs), 2, figsize=(11, 4 * len(docs)), squeeze=False)
    for doc, (ax_p, ax_t) in zip(docs, axes, strict=True):
        ds = doc["dataset"]
        lines += [
            f"## {ds}",
            "",
            f"Profile `{doc['config']}` with {json.dumps(doc['common'])}; {doc['machine']}."
            + "".join(f" Points labelled `[{_profile_name(c)}]` ran under `{c}`." for c in _other_configs(doc)),
            "",
            "| point | overrides | params | epochs (kept) | val HR@10 | val NDCG@10 | train min (all) | stage min |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        rows = sorted(doc["points"].values(), key=lambda r: -r["val_NDCG@10"])
        for r in rows:
            own = {k: v for k, v in r["overrides"].items() if k not in doc["common"]}
            lines.append(
                f"| {r['point']} | {', '.join(f'`{k}={v}`' for k, v in own.items()) or '—'} | {r['params']:,} | "
                f"{r['epochs_trained']} ({r['best_epoch']}) | {r['val_HR@10']:.4f} | {r['val_NDCG@10']:.4f} | "
                f"{r['train_minutes']:.1f} | {r['stage_minutes']:.1f} |"
            )
            ax_p.scatter(r["params"], r["val_NDCG@10"])
            ax_p.annotate(r["point"], (r["params"], r["val_NDCG@10"]), fontsize=7)
            xs = [c["train_minutes"] for c in r["curve"]]
            ax_t.plot(xs, [c["val_NDCG@10"] for c in r["curve"]], marker=".", label=r["point"])
        lines.append("")
        reread = [r for r in rows if "reread" in r]
        if reread:
            lines += [
                "Re-read (`--reread`): the kept LM of each point against its reference run's on validation users "
                "outside every selection sample (paired: exact sign test HR@10, Wilcoxon NDCG@10); the 2,048-user "
                "column above chose each point's epoch and is not the comparison.",
                "",
                "| point | reference run | users | HR@10 | NDCG@10 | reference NDCG@10 | Δ NDCG@10 "
                "| p NDCG@10 | p HR@10 |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for r in reread:
                x = r["reread"]
                delta = x["NDCG@10"] / x["against NDCG@10"] - 1
                lines.append(
                    f"| {r['point']} | `{x['against']}` | {x['users']:,} | {x['HR@10']:.4f} | {x['NDCG@10']:.4f} | "
                    f"{x['against NDCG@10']:.4f} | {delta:+.1%} | {x['p NDCG@10']:.2g} | {x['p HR@10']:.2g} |"
                )
            lines.append("")
        ax_p.set(xscale="log", xlabel="parameters", ylabel="best validation NDCG@10", title=f"{ds}: size")
        ax_t.set(
            xlabel="training minutes (2 threads)", ylabel="validation NDCG@10 per epoch", title=f"{ds}: per minute"
        )
        ax_t.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "lm_study.png", dpi=110)
    (RESULTS / "lm_study.md").write_text("\n".join(lines) + "\n")
    print(f"lm_study: wrote {RESULTS / 'lm_study.md'} and {RESULTS / 'lm_study.png'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, help="YAML profile (its dataset names the results file)")
    p.add_argument("--points", nargs="+", default=list(POINTS), choices=list(POINTS), metavar="POINT")
    p.add_argument("--report", action="store_true", help="only write the table and figure from the results")
    p.add_argument("--test", type=int, metavar="USERS", help="test the trained --points on this many test users")
    p.add_argument(
        "--reread",
        type=int,
        metavar="USERS",
        help="re-read the trained --points on this many validation users outside the selection samples (--against)",
    )
    p.add_argument("--against", type=Path, metavar="RUN", help="with --reread: the run folder to compare with")
    p.add_argument(
        "--base-from",
        type=Path,
        metavar="RUN",
        help="read the base point from this run folder of the profile (every epoch checkpoint kept), not training it",
    )
    p.add_argument(
        "--teacher-from",
        type=Path,
        metavar="RUN",
        help="a distilled point starts from this run folder's trained SASRec (reused only if its key is the point's)",
    )
    p.add_argument(
        "--reference",
        type=Path,
        nargs="*",
        default=[],
        help="with --test: decode stages' rankings/<row>__test.npz to compare with",
    )
    add_set_option(p, "profile override under every point (repeatable), e.g. seed=2025")
    args = p.parse_args()
    sets = parse_sets(args.sets)
    if (args.test or args.reread or not args.report) and args.config is None:
        p.error("--config is required unless --report")
    if args.reread and args.against is None:
        p.error("--reread needs --against RUN (the run whose LM the points are compared with)")
    if args.reread:
        reread_points(args.config, args.points, args.reread, args.against, sets)
    elif args.test:
        test_points(args.config, args.points, args.test, args.reference, sets)
    elif not args.report:
        study(args.config, args.points, args.base_from, args.teacher_from, sets)
    report()


if __name__ == "__main__":
    main()
