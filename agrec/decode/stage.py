"""The decode stage: choose α on validation, then the ablation table on test, with per-user rankings.

Artefacts under ``<run>/decode/``: ``results.json`` (rows with their settings and metrics, the α/τ
curve, the chosen point) and ``rankings/<row>__<target>.npz`` (``users``, ``targets``, ``items [U, K]``,
``scores [U, K]``) for every row, which the analysis stage reads.
"""

from __future__ import annotations

import io
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from agrec.decode.evaluate import TARGETS, Evaluator, Row, build_inputs, choose, scorer_rankings
from agrec.decode.trie import ItemTrie
from agrec.errors import AgrecError
from agrec.io import atomic_write_bytes, atomic_write_json
from agrec.lineage import DECODE_SECTIONS, config_key
from agrec.scorers import agrec_row, load_scorer
from agrec.session import Session

STAGE = "decode"
RESULTS = "results.json"
RANKINGS = "rankings"
# Every section the decoded rankings depend on.
SECTIONS = DECODE_SECTIONS


@dataclass
class DecodeReport:
    """What the decode stage produced (also what ``results.json`` holds)."""

    rows: list[dict[str, Any]]          # name, settings, valid/test metrics
    curve: list[dict[str, Any]]         # alpha, tau, valid/test metrics (main scorer)
    chosen: dict[str, Any]              # the α/τ point chosen on validation
    n_users: int
    seconds: float
    folder: Path

    def table(self, target: str = "test") -> pd.DataFrame:
        """Ablation table: one row per method, HR/NDCG columns on ``target``."""
        return pd.DataFrame([{"method": r["name"], **r["metrics"][target]} for r in self.rows])

    def curve_frame(self) -> pd.DataFrame:
        """Long format: alpha, tau, target, metric, value."""
        recs = [{"alpha": p["alpha"], "tau": p["tau"], "target": t, "metric": m, "value": v}
                for p in self.curve for t in TARGETS for m, v in p[t].items()]
        return pd.DataFrame(recs)

    def rankings(self, row: str, target: str) -> dict[str, np.ndarray]:
        """Per-user rankings of a row: ``users``, ``targets``, ``items [U, K]``, ``scores [U, K]``."""
        return load_rankings(self.folder, row, target)


def slug(name: str) -> str:
    """File-name form of a row name: ``AGRec (lightgcn)`` -> ``agrec_lightgcn``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def load_rankings(folder: Path, row: str, target: str) -> dict[str, np.ndarray]:
    path = folder / RANKINGS / f"{slug(row)}__{target}.npz"
    if not path.is_file():
        raise AgrecError(f"{path}: no rankings for row {row!r} / {target} (run the decode stage)")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _save_rankings(folder: Path, row: Row, users: np.ndarray, targets: dict[str, np.ndarray]) -> None:
    for target, res in row.results.items():
        buf = io.BytesIO()
        np.savez_compressed(buf, users=users, targets=targets[target], items=res.items.numpy(),
                            scores=res.scores.numpy())
        atomic_write_bytes(folder / RANKINGS / f"{slug(row.name)}__{target}.npz", buf.getvalue())


def read_report(session: Session) -> DecodeReport:
    folder = session.run.root / STAGE
    path = folder / RESULTS
    if not path.is_file():
        raise AgrecError(f"{path}: the decode stage has not run for this run directory")
    d = json.loads(path.read_text())
    return DecodeReport(rows=d["rows"], curve=d["curve"], chosen=d["chosen"], n_users=d["n_users"],
                        seconds=d["seconds"], folder=folder)


def evaluate_decoding(session: Session, force: bool = False, log: Callable[[str], None] = print) -> DecodeReport:
    """Run (or reuse) the decode stage of ``session``'s profile; see the module docstring."""
    from agrec.data.stage import prepare_data
    from agrec.gnn.stage import run_gnn_stage
    from agrec.lm.stage import train_lm

    profile, run = session.profile, session.run
    key = config_key(profile, STAGE)
    if not force and run.is_current(STAGE, key, profile):
        return read_report(session)
    run.invalidate(STAGE)
    folder = run.stage_dir(STAGE)
    ev_cfg, dec_cfg = profile.evaluation, profile.decode
    t0 = time.perf_counter()

    ds, split = prepare_data(session)
    bundle = train_lm(session)
    trie = ItemTrie.build(bundle.item_token_ids)
    n_users = split.n_users if ev_cfg.max_users is None else min(ev_cfg.max_users, split.n_users)
    users = np.arange(n_users)
    inputs = {t: build_inputs(split, bundle.prompt_ids, t, users, ev_cfg.exclude_history) for t in TARGETS}
    # Every scorer is asked per target (train-only scores for valid, train + validation for test); only
    # its top max(top_n, beam) items per user are kept (see scorer_rankings).
    names = list(dict.fromkeys([ev_cfg.scorer, *ev_cfg.scorers]))
    depth = max(dec_cfg.top_n, dec_cfg.beam_size)
    run_gnn_stage(session)  # the whole stage, so that its record (an input of this one) exists
    rankings = {name: scorer_rankings(load_scorer(session, name), inputs, depth) for name in names}
    ev = Evaluator(bundle.model, trie, bundle.pad_token_id, inputs, rankings, dec_cfg, ev_cfg.ks, log=log)
    log(f"decode: {n_users} users, {ds.n_items} items, beam {dec_cfg.beam_size}, top_n {dec_cfg.top_n}")

    # α/τ curve with the main scorer; α = 0 does not depend on τ or the scorer, so it is decoded once.
    main_name = ev_cfg.scorer
    base = ev.decode_row("w/o Graph", None, alpha=0.0)
    curve, by_point = [], {}
    for tau in ev_cfg.tau_grid:
        for alpha in ev_cfg.alpha_grid:
            row = base if alpha == 0 else ev.decode_row(f"α={alpha:g} τ={tau:g}", main_name, alpha=alpha, tau=tau)
            curve.append({"alpha": alpha, "tau": tau, **{t: row.metrics[t] for t in TARGETS}})
            by_point[(alpha, tau)] = row
    best = choose(curve, ev_cfg.select_metric)
    a, tau = best["alpha"], best["tau"]
    log(f"decode: chose α={a:g}, τ={tau:g} on validation {ev_cfg.select_metric}")

    rows: list[Row] = [base]
    for name in names:
        rows.append(ev.scorer_row(name))
    main = by_point[(a, tau)]
    rows.append(Row(name=agrec_row(main_name), settings={**main.settings, "scorer": main_name if a > 0 else None},
                    results=main.results, metrics=main.metrics))
    one = by_point.get((1.0, tau)) or ev.decode_row("α=1", main_name, alpha=1.0, tau=tau)
    rows.append(Row(name=f"α=1 ({main_name})", settings=one.settings, results=one.results, metrics=one.metrics))
    if a > 0:
        for name in names:
            if name != main_name:
                rows.append(ev.decode_row(agrec_row(name), name, alpha=a, tau=tau))
        if ev_cfg.released_code_variants:
            rows.append(ev.decode_row("released code: mix=logit", main_name, alpha=a, tau=tau, mix="logit"))
            rows.append(ev.decode_row("released code: state=last_token", main_name, alpha=a, tau=tau,
                                      state="last_token"))
            rows.append(ev.decode_row("released code: logit + last_token + max", main_name, alpha=a, tau=tau,
                                      mix="logit", state="last_token", agg="max"))
    else:
        log("decode: α = 0 won on validation, so the AGRec rows equal 'w/o Graph'; scorer and variant rows at "
            "α > 0 are in the curve")

    targets = {t: inputs[t].targets for t in TARGETS}
    saved = {id(r) for r in rows}
    for row in rows + [r for r in by_point.values() if id(r) not in saved]:
        _save_rankings(folder, row, users, targets)
    seconds = round(time.perf_counter() - t0, 1)
    rec_rows = [{"name": r.name, "settings": r.settings, "metrics": r.metrics, "rankings": slug(r.name)} for r in rows]
    report = DecodeReport(rows=rec_rows, curve=curve, chosen=best, n_users=n_users, seconds=seconds, folder=folder)
    atomic_write_json(folder / RESULTS, {"rows": rec_rows, "curve": curve, "chosen": best, "n_users": n_users,
                                         "seconds": seconds,
                                         "curve_rankings": {f"{p['alpha']:g},{p['tau']:g}": slug(by_point[(p['alpha'], p['tau'])].name)
                                                            for p in curve}})
    run.mark_done(STAGE, key, profile, chosen=best, seconds=seconds)
    return report
