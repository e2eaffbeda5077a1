"""The decode stage: choose α on validation, then the ablation table on test, with per-user rankings.

Artefacts under ``<run>/decode/``: ``results.json`` (rows with their settings and metrics, the α/τ
curve, the chosen point) and ``rankings/<row>__<target>.npz`` (``users``, ``targets``, ``items [U, K]``,
``scores [U, K]``) for every row, which the analysis stage reads.
"""

from __future__ import annotations

import io
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from agrec.data.split import LeaveOneOutSplit
from agrec.data.stage import load_run_data
from agrec.decode.beam import DecodeResult
from agrec.decode.config import DecodeConfig, EvalConfig
from agrec.decode.evaluate import (
    TARGETS,
    EvalInputs,
    Evaluator,
    Row,
    build_inputs,
    choose,
    scorer_rankings,
    subset,
    validation_users,
)
from agrec.decode.fusion import fuse_rankings, fusion_name
from agrec.decode.point import DecodePoint
from agrec.decode.shard import SINGLE, broadcast_object, gather_rows, shard_positions
from agrec.decode.trie import ItemTrie
from agrec.decode.variants import DecodeVariant, alpha_label, choose_point, parse_variants, slug
from agrec.devices import resolve_device
from agrec.gnn.stage import run_gnn_stage
from agrec.errors import AgrecError
from agrec.io import atomic_write_bytes, atomic_write_json, check_format, read_json_file
from agrec.run.lineage import DECODE_SECTIONS, config_key
from agrec.lm.distributed import DistEnv, init_distributed
from agrec.lm.stage import train_lm
from agrec.metrics import evaluate_rankings
from agrec.scorers import TopNScorer, agrec_row, load_scorer
from agrec.run.session import Session

STAGE = "decode"
RESULTS = "results.json"
# Version of results.json's layout (DecodeReport.to_json / read_results). A file without "format" was written
# before the layout had a number and is read as format 1; a larger number than this one is refused by name.
RESULTS_FORMAT = 1
RANKINGS = "rankings"
# Every section the decoded rankings depend on.
SECTIONS = DECODE_SECTIONS


@dataclass
class DecodeReport:
    """What the decode stage produced (also what ``results.json`` holds)."""

    rows: list[dict[str, Any]]  # name, settings, valid/test metrics
    curve: list[dict[str, Any]]  # alpha, tau, valid/test metrics (main scorer)
    chosen: dict[str, Any]  # the α/τ point chosen on validation
    n_users: int
    seconds: float
    folder: Path
    n_valid_users: int | None = None  # evaluation.select_users: the validation subsample's size (None: n_users)
    # evaluation.decode_variants: name -> {"row", "settings", "curve" (valid metrics per grid point), "chosen"}
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the configuration the profile ships, chosen on validation across all AGRec rows, with its selection regret
    selected: dict[str, Any] | None = None
    # the α/τ curve of every other scorer (validation, and test where a row needed it), keyed by scorer name
    scorer_curves: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # "alpha,tau" of each main-curve point -> the slug of its rankings (the analysis stage reads them)
    curve_rankings: dict[str, str] = field(default_factory=dict)
    fusion: dict[str, Any] | None = None  # evaluation.fuse: the weight chosen on validation and its curve

    def to_json(self) -> dict[str, Any]:
        """``results.json`` (format :data:`RESULTS_FORMAT`), read back by :func:`load_report`."""
        out: dict[str, Any] = {
            "format": RESULTS_FORMAT,
            "rows": self.rows,
            "curve": self.curve,
            "chosen": self.chosen,
            "selected": self.selected,
            "n_users": self.n_users,
        }
        if self.n_valid_users is not None:
            out["n_valid_users"] = self.n_valid_users
        if self.variants:
            out["decode_variants"] = self.variants
        if self.fusion is not None:
            out["fusion"] = self.fusion
        out.update(seconds=self.seconds, scorer_curves=self.scorer_curves, curve_rankings=self.curve_rankings)
        return out

    def save(self) -> Path:
        """Write ``<folder>/results.json`` atomically (the one writer of the decode stage's results)."""
        return atomic_write_json(self.folder / RESULTS, self.to_json())

    def table(self, target: str = "test") -> pd.DataFrame:
        """Ablation table: one row per method, HR/NDCG columns on ``target``."""
        return pd.DataFrame([{"method": r["name"], **r["metrics"][target]} for r in self.rows])

    def results_frame(self, valid_metric: str = "NDCG@10") -> pd.DataFrame:
        """One row per method: its validation ``valid_metric`` beside every test metric."""
        return pd.DataFrame(
            [
                {
                    "method": r["name"],
                    f"valid {valid_metric}": r["metrics"]["valid"][valid_metric],
                    **{f"test {k}": v for k, v in r["metrics"]["test"].items()},
                }
                for r in self.rows
            ]
        )

    def curve_frame(self) -> pd.DataFrame:
        """Long format: alpha, tau, target, metric, value."""
        return curve_records(self.curve)

    def rankings(self, row: str, target: str) -> dict[str, np.ndarray]:
        """Per-user rankings of a row: ``users``, ``targets``, ``items [U, K]``, ``scores [U, K]``."""
        return load_rankings(self.folder, row, target)


def curve_records(curve: list[dict[str, Any]]) -> pd.DataFrame:
    """The α curve in long format (alpha, tau, target, metric, value); a point without a target's metrics
    (``evaluation.test_curve: false`` leaves ``"test": null`` where no table row needed it) has no records
    for that target."""
    recs = [
        {"alpha": p["alpha"], "tau": p["tau"], "target": t, "metric": m, "value": v}
        for p in curve
        for t in TARGETS
        for m, v in (p.get(t) or {}).items()
    ]
    return pd.DataFrame(recs, columns=["alpha", "tau", "target", "metric", "value"])


RANKING_ARRAYS = ("users", "targets", "items")


def save_rankings(
    folder: Path,
    row: str,
    target: str,
    users: np.ndarray,
    targets: np.ndarray,
    items: np.ndarray,
    scores: np.ndarray,
) -> Path:
    """Write one row's rankings, ``<folder>/rankings/<row>__<target>.npz`` (``users [U]``, ``targets [U]``,
    ``items [U, K]``, ``scores [U, K]``), atomically; :func:`load_rankings` reads it back."""
    n = len(users)
    if targets.shape != (n,) or items.ndim != 2 or items.shape[0] != n or scores.shape != items.shape:
        raise ValueError(
            f"rankings of {row!r}/{target}: users {users.shape}, targets {targets.shape}, items {items.shape} and "
            f"scores {scores.shape} do not describe one ranking per user"
        )
    buf = io.BytesIO()
    np.savez_compressed(buf, users=users, targets=targets, items=items, scores=scores)
    return atomic_write_bytes(folder / RANKINGS / f"{slug(row)}__{target}.npz", buf.getvalue())


def load_rankings(folder: Path, row: str, target: str) -> dict[str, np.ndarray]:
    """One row's rankings (``users [U]``, ``targets [U]``, ``items [U, K]``, ``scores [U, K]``); a file that is
    missing, truncated or not what the stage writes is a named :class:`AgrecError`, never a numpy traceback."""
    path = folder / RANKINGS / f"{slug(row)}__{target}.npz"
    if not path.is_file():
        raise AgrecError(f"{path}: no rankings for row {row!r} / {target} (run the decode stage)")
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise AgrecError(
            f"{path}: cannot be read as the decode stage's rankings ({type(e).__name__}); the file "
            f"is damaged: rerun the decode stage"
        ) from None
    missing = [k for k in RANKING_ARRAYS if k not in out]
    if missing:
        raise AgrecError(f"{path}: holds no {', '.join(missing)} (not written by the decode stage)")
    n = len(out["users"])
    if out["targets"].shape != (n,) or out["items"].ndim != 2 or out["items"].shape[0] != n:
        raise AgrecError(
            f"{path}: users {out['users'].shape}, targets {out['targets'].shape} and items "
            f"{out['items'].shape} do not describe one ranking per user"
        )
    return out


def read_results(folder: Path) -> dict[str, Any]:
    """``results.json`` of a decode stage folder, checked for what its readers use: a named error for a file that
    is missing, not JSON, or holds fields of the wrong type."""
    path = folder / RESULTS
    if not path.is_file():
        raise AgrecError(f"{path}: the decode stage has not run for this run directory")
    d = read_json_file(path, "rerun the decode stage")

    def bad(what: str) -> AgrecError:
        return AgrecError(f"{path}: {what} (not as the decode stage writes it; rerun it)")

    if not isinstance(d, dict):
        raise bad("the top level is not an object")
    check_format(path, d.get("format", 1), "decode results", newest=RESULTS_FORMAT, remedy="rerun the decode stage")
    rows = d.get("rows")
    if not isinstance(rows, list) or not rows:
        raise bad("'rows' is not a non-empty list")
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or not isinstance(r.get("name"), str):
            raise bad(f"row {i} has no name")
        metrics = r.get("metrics")
        if not isinstance(metrics, dict):
            raise bad(f"row {r['name']!r} has no metrics")
        for target, values in metrics.items():
            if not isinstance(values, dict) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values.values()
            ):
                raise bad(f"row {r['name']!r}: {target} metrics are not numbers")
        if not isinstance(r.get("settings", {}), dict):
            raise bad(f"row {r['name']!r}: 'settings' is not an object")
    chosen = d.get("chosen")
    if not isinstance(chosen, dict) or "alpha" not in chosen or not isinstance(chosen.get("valid"), dict):
        raise bad("'chosen' has no alpha and valid metrics")
    for key in ("n_users", "seconds"):
        if not isinstance(d.get(key), (int, float)) or isinstance(d.get(key), bool):
            raise bad(f"{key!r} is not a number")
    if not isinstance(d.get("curve"), list):
        raise bad("'curve' is not a list")
    sel = d.get("selected")
    if sel is not None and (
        not isinstance(sel, dict) or not isinstance(sel.get("source"), str) or not isinstance(sel.get("valid"), dict)
    ):
        raise bad("'selected' does not name its source row and validation metrics")
    return d


class RankingWriter:
    """The decode stage's sink (:class:`Evaluator` ``sink``): each row's rankings go to disk as they are produced.

    Every process hands in its shard's rows; rank 0 reassembles them (:func:`gather_rows`), writes
    ``rankings/<row>__<target>.npz`` and computes the metrics, which every process receives (so that all
    choose the same α). Memory: one row's ``[U, K]`` on rank 0 while it is written.
    """

    def __init__(
        self, folder: Path, env: DistEnv, inputs: dict[str, EvalInputs], positions: dict[str, np.ndarray], ks: list[int]
    ):
        self.folder, self.env, self.inputs, self.positions, self.ks = folder, env, inputs, positions, ks

    def path(self, name: str, target: str) -> Path:
        return self.folder / RANKINGS / f"{slug(name)}__{target}.npz"

    def __call__(self, row: Row, target: str, result: DecodeResult) -> dict[str, float]:
        inp = self.inputs[target]
        full = gather_rows(self.env, self.positions[target], result.items, result.scores, len(inp.users))
        metrics = None
        if full is not None:
            items, scores = full
            metrics = evaluate_rankings(items.numpy(), inp.targets, self.ks)
            save_rankings(self.folder, row.name, target, inp.users, inp.targets, items.numpy(), scores.numpy())
        return broadcast_object(self.env, metrics)

    def copy(self, source: Row, name: str) -> None:
        """The rankings of ``source`` also under the row name ``name`` (a table row that is a curve point)."""
        if self.env.is_main:
            for target in source.metrics:
                atomic_write_bytes(self.path(name, target), self.path(source.name, target).read_bytes())


def read_report(session: Session) -> DecodeReport:
    return load_report(session.run.root / STAGE)


def load_report(folder: Path) -> DecodeReport:
    """The :class:`DecodeReport` of a decode stage folder (its ``results.json``)."""
    d = read_results(folder)
    return DecodeReport(
        rows=d["rows"],
        curve=d["curve"],
        chosen=d["chosen"],
        n_users=d["n_users"],
        seconds=d["seconds"],
        folder=folder,
        n_valid_users=d.get("n_valid_users"),
        variants=d.get("decode_variants") or {},
        selected=d.get("selected"),
        scorer_curves=d.get("scorer_curves") or {},
        curve_rankings=d.get("curve_rankings") or {},
        fusion=d.get("fusion"),
    )


def evaluate_decoding(session: Session, force: bool = False, log: Callable[[str], None] = print) -> DecodeReport:
    """Run (or reuse) the decode stage of ``session``'s profile; see the module docstring.

    Under ``torchrun`` (:mod:`agrec.decode.run`) every process decodes its shard of the users and rank 0
    writes the artefacts and the record, exactly as one process would.
    """
    env = init_distributed()
    say = log if env.is_main else (lambda s: None)
    profile, run = session.profile, session.run
    key = config_key(profile, STAGE)
    current = not force and run.is_current(STAGE, key, profile, log=print if env.is_main else None)
    env.barrier()  # every process has looked before rank 0 invalidates
    if current:
        return read_report(session)
    if env.is_main:
        run.invalidate(STAGE)
    env.barrier()
    folder = run.stage_dir(STAGE)
    t0 = time.perf_counter()

    with env.main_first():
        data = load_run_data(session)
    ds, split = data.ds, data.split
    bundle = train_lm(session)
    model = bundle.model.to(resolve_device(profile.decode.device, "decode.device", env.device))
    trie = ItemTrie.build(bundle.item_token_ids)
    with env.main_first():
        run_gnn_stage(data)  # the whole stage, so that its record (an input of this one) exists
        names = list(dict.fromkeys([profile.evaluation.scorer, *profile.evaluation.scorers]))
        scorers = {name: load_scorer(data, name, lm=bundle) for name in names}
    say(
        f"decode: {ds.n_items} items, beam {profile.decode.beam_size}, top_n {profile.decode.top_n}"
        + (f", {env.world} processes" if env.distributed else "")
    )
    report = decode_table(
        model,
        trie,
        bundle.pad_token_id,
        split,
        bundle.prompt_ids,
        scorers,
        profile.decode,
        profile.evaluation,
        folder,
        profile.seed,
        env=env,
        log=say,
        t0=t0,
    )
    if env.is_main:
        run.mark_done(STAGE, key, profile, chosen=report.chosen, seconds=report.seconds)
    env.barrier()
    return report


def decode_table(
    model: Any,
    trie: ItemTrie,
    pad_token_id: int,
    split: LeaveOneOutSplit,
    prompt_fn: Callable[[Sequence[int]], list[int]],
    scorers: dict[str, TopNScorer],
    dec_cfg: DecodeConfig,
    ev_cfg: EvalConfig,
    folder: Path,
    seed: int,
    env: DistEnv | None = None,
    log: Callable[[str], None] = print,
    t0: float | None = None,
) -> DecodeReport:
    """The stage's work once its inputs exist: the α/τ curve, the choice, the table; writes ``folder``'s
    rankings (as produced) and ``results.json`` (rank 0). ``scorers`` maps every name of ``evaluation.scorer``
    and ``evaluation.scorers`` to its :class:`TopNScorer`; ``seed`` draws ``evaluation.select_users``.

    In four steps: plan every validation row (:func:`plan_rows`), decode them and choose each AGRec row's α/τ and
    the selected configuration on validation (:func:`choose_rows`), decode the test item where a table row needs
    it (:func:`rows_for_test`), assemble the table (:func:`assemble_rows`)."""
    env = env or SINGLE
    t0 = time.perf_counter() if t0 is None else t0
    n_users = split.n_users if ev_cfg.max_users is None else min(ev_cfg.max_users, split.n_users)
    users = {"valid": validation_users(n_users, ev_cfg.select_users, seed), "test": np.arange(n_users)}
    inputs = {t: build_inputs(split, prompt_fn, t, users[t], ev_cfg.exclude_history) for t in TARGETS}
    # Every scorer is asked per target (train-only scores for valid, train + validation for test); only
    # its top max(top_n, beam) items per user are kept (see scorer_rankings).
    names = list(dict.fromkeys([ev_cfg.scorer, *ev_cfg.scorers]))
    variants = parse_variants(ev_cfg, dec_cfg)
    # Ranking depth: the largest top_n of the profile and its decode variants (a stable top-k, so the first
    # columns do not depend on the depth), and the beam (the scorer rows' length).
    depth = max(dec_cfg.top_n, dec_cfg.beam_size, *(int(v.settings.get("top_n", 0)) for v in variants))
    rankings = {name: scorer_rankings(scorers[name], inputs, depth, env=env) for name in names}
    fused = fused_scorers(ev_cfg, rankings, dec_cfg.top_n, depth)  # {weight: scorer key}; adds their rankings
    # This process's users: whole batches of the single-process decode (agrec.decode.shard).
    positions = {t: shard_positions(inputs[t].prompts, dec_cfg.batch_size, env.rank, env.world) for t in TARGETS}
    mine = {t: subset(inputs[t], positions[t]) for t in TARGETS}
    mine_rankings = {
        name: {t: DecodeResult(items=r.items[positions[t]], scores=r.scores[positions[t]]) for t, r in per.items()}
        for name, per in rankings.items()
    }
    del rankings
    writer = RankingWriter(folder, env, inputs, positions, list(ev_cfg.ks))
    ev = Evaluator(model, trie, pad_token_id, mine, mine_rankings, dec_cfg, ev_cfg.ks, log=log, sink=writer)
    log(
        f"decode: {n_users} users"
        + (f" ({len(users['valid'])} for validation)" if ev_cfg.select_users else "")
        + (f", this process {len(positions['test'])}" if env.distributed else "")
    )

    # The rows are planned first and decoded in as few passes over the users as their dependencies allow (each
    # pass encodes a batch's prompts once for all its rows, Evaluator.decode_rows): every validation point known
    # before the choice (each scorer's α/τ curve, each decode variant's grid) in one pass; then the rows at the
    # chosen α; then every test row in one pass. α = 0 does not depend on τ or the scorer, so it is one row.
    plan = plan_rows(ev, ev_cfg, names, variants, fused)
    ev.decode_rows(plan.valid_rows(), "valid")
    choice = choose_rows(ev, plan, ev_cfg, log)
    ev.decode_rows(rows_for_test(plan, choice, ev_cfg), "test")
    by_point = plan.curves[plan.main]
    curve = curve_points(by_point)
    for p in curve:
        p["test"] = by_point[(p["alpha"], p["tau"])].metrics.get("test")
    rows, variant_records, fusion_record = assemble_rows(ev, plan, choice, ev_cfg, writer)
    selected_record = choice.selected.record(ev_cfg.select_metric)

    seconds = round(time.perf_counter() - t0, 1)
    rec_rows = [{"name": r.name, "settings": r.settings, "metrics": r.metrics, "rankings": slug(r.name)} for r in rows]
    report = DecodeReport(
        rows=rec_rows,
        curve=curve,
        chosen=choice.chosen_by[plan.main],
        n_users=n_users,
        seconds=seconds,
        folder=folder,
        n_valid_users=len(users["valid"]) if ev_cfg.select_users is not None else None,
        variants=variant_records if variants else {},
        selected=selected_record,
        scorer_curves={name: curve_points(pts) for name, pts in plan.curves.items() if name != plan.main},
        curve_rankings={f"{p['alpha']:g},{p['tau']:g}": slug(by_point[(p["alpha"], p["tau"])].name) for p in curve},
        fusion=fusion_record,
    )
    if env.is_main:
        report.save()
    return report


@dataclass
class RowPlan:
    """Every row whose validation item is decoded before any choice: the LM alone (``base``), each scorer's
    α/τ curve (``curves[scorer][(alpha, tau)]``), each decode variant's grid and the fused scorer's grid."""

    main: str  # the main scorer (evaluation.scorer)
    names: list[str]  # every scorer with an AGRec row, the main one first
    base: Row
    curves: dict[str, dict[tuple[float, float], Row]]
    variants: list[tuple[DecodeVariant, list[tuple[Any, float, Row]]]]
    fusion: dict[float, dict[tuple[float, float], Row]]

    def valid_rows(self) -> list[Row]:
        return [
            self.base,
            *(row for pts in self.curves.values() for row in pts.values()),
            *(row for _, plan in self.variants for _, _, row in plan),
            *(row for pts in self.fusion.values() for row in pts.values()),
        ]


@dataclass
class RowChoice:
    """What validation chose: each scorer's α/τ (``chosen_by``), the α = 1 row
    of the main scorer, the released code's rows at the chosen α (``extra``, validation decoded), each variant's
    point, the fused scorer's weight and point, and the selected configuration among all AGRec rows."""

    chosen_by: dict[str, dict[str, Any]]
    one: Row
    one_name: str
    extra: list[Row]
    variants: list[tuple[DecodeVariant, list[tuple[Any, float, Row]], int]]
    fusion: tuple[float, dict[str, Any], Row] | None
    selected: Candidate


def plan_rows(
    ev: Evaluator, ev_cfg: EvalConfig, names: list[str], variants: list[DecodeVariant], fused: dict[float, str]
) -> RowPlan:
    """Plan: the rows of every validation point known before any choice (nothing is decoded here)."""
    base = ev.new_row("w/o Graph", None, alpha=0.0)
    main = ev_cfg.scorer
    return RowPlan(
        main=main,
        names=names,
        base=base,
        curves=plan_curves(ev, names, main, base, ev_cfg.alpha_grid, ev_cfg.tau_grid),
        variants=[(v, plan_variant(ev, v, base, main)) for v in variants],
        fusion=plan_fusion(ev, ev_cfg, fused, base),
    )


def choose_rows(ev: Evaluator, plan: RowPlan, ev_cfg: EvalConfig, log: Callable[[str], None] = print) -> RowChoice:
    """Choose on validation (the plan's rows decoded): every AGRec row its own α/τ, each scorer on its own curve
    (the grid holds 0, the LM alone, and 1, the scorer alone with sum aggregation), each variant on its own grid,
    the fused scorer's weight; then the selected configuration. Decodes the validation item of the rows that
    exist only at the chosen α (α = 1 when off the grid, the released code's variants)."""
    metric = ev_cfg.select_metric
    chosen_by = {name: choose(curve_points(pts), metric) for name, pts in plan.curves.items()}
    for name, point in chosen_by.items():
        log(f"decode: {agrec_row(name)}: chose α={point['alpha']:g}, τ={point['tau']:g} on validation {metric}")
    best = chosen_by[plan.main]
    a, tau = best["alpha"], best["tau"]
    by_point = plan.curves[plan.main]
    one_name = f"α=1 ({plan.main})"
    one = by_point.get((1.0, tau)) or ev.new_row(one_name, plan.main, alpha=1.0, tau=tau)
    extra: list[Row] = [] if (1.0, tau) in by_point else [one]  # decoded on both targets
    if a > 0 and ev_cfg.released_code_variants:
        extra += [
            ev.new_row("released code: mix=logit", plan.main, alpha=a, tau=tau, mix="logit"),
            ev.new_row("released code: state=last_token", plan.main, alpha=a, tau=tau, state="last_token"),
            ev.new_row(
                "released code: logit + last_token + max",
                plan.main,
                alpha=a,
                tau=tau,
                mix="logit",
                state="last_token",
                agg="max",
            ),
        ]
    ev.decode_rows(extra, "valid")
    chosen_variants = [(v, vplan, choose_variant(v, vplan, metric, log)) for v, vplan in plan.variants]
    fusion_choice = choose_fusion(plan.fusion, metric, log) if plan.fusion else None
    candidates = selection_candidates(plan.names, plan.curves, chosen_by, chosen_variants)
    if fusion_choice is not None:
        w, point, row = fusion_choice
        candidates.append(
            Candidate(
                agrec_row(fusion_name(*(ev_cfg.fuse or ()))),
                row,
                point["alpha"],
                point["tau"],
                [(alpha, tau, r) for (alpha, tau), r in plan.fusion[w].items()],
            )
        )
    selected = select_row(candidates, metric)
    log(
        f"decode: selected {selected.source} (α={alpha_label(selected.alpha)}, τ={selected.tau:g}) among "
        f"{len(candidates)} AGRec rows on validation {metric}"
    )
    return RowChoice(chosen_by, one, one_name, extra, chosen_variants, fusion_choice, selected)


def rows_for_test(plan: RowPlan, choice: RowChoice, ev_cfg: EvalConfig) -> list[Row]:
    """The rows whose test item is decoded: every point of the main curve (only the LM alone with
    ``test_curve: false``), each chosen row, the α = 1 and released-code rows, the whole curve of the selected
    row (for its selection regret)."""
    by_point = plan.curves[plan.main]
    best = choice.chosen_by[plan.main]
    return [
        plan.base,
        *(by_point.values() if ev_cfg.test_curve else ()),
        by_point[(best["alpha"], best["tau"])],
        choice.one,
        *choice.extra,
        *(plan.curves[n][(p["alpha"], p["tau"])] for n, p in choice.chosen_by.items()),
        *(vplan[i][2] for _, vplan, i in choice.variants),
        *(row for _, _, row in choice.selected.curve),
        *([choice.fusion[2]] if choice.fusion is not None else []),
    ]


def assemble_rows(
    ev: Evaluator, plan: RowPlan, choice: RowChoice, ev_cfg: EvalConfig, writer: RankingWriter
) -> tuple[list[Row], dict[str, dict[str, Any]], dict[str, Any] | None]:
    """The table (every row decoded): the LM alone, each scorer alone, each AGRec row at its chosen point (the
    main one first, then its α = 1 row), the released code's rows, the variants, the fused row, the selected
    row; each row's rankings are copied under its name. Returns the rows, the variants' records and the
    fusion's record."""
    rows: list[Row] = [plan.base]
    for name in plan.names:
        rows.append(ev.scorer_row(name))
    for name in [plan.main, *(n for n in plan.names if n != plan.main)]:
        point = choice.chosen_by[name]
        source = plan.curves[name][(point["alpha"], point["tau"])]
        rows.append(
            Row(
                name=agrec_row(name),
                point=_point(source).with_(
                    alpha=point["alpha"], tau=point["tau"], scorer=name if point["alpha"] > 0 else None
                ),
                metrics=source.metrics,
            )
        )
        writer.copy(source, rows[-1].name)
        one = choice.one
        if name == plan.main and one.name != choice.one_name:
            rows.append(Row(name=choice.one_name, point=one.point, metrics=one.metrics))
            writer.copy(one, choice.one_name)
    rows.extend(choice.extra)
    variant_records = {}
    for v, vplan, i in choice.variants:
        row, record, source = variant_row(v, vplan, i)
        rows.append(row)
        writer.copy(source, row.name)
        variant_records[v.name] = record
    fusion_record = None
    if choice.fusion is not None:
        w, point, source = choice.fusion
        name = fusion_name(*(ev_cfg.fuse or ()))
        rows.append(
            Row(
                name=agrec_row(name),
                point=DecodePoint.of(point["alpha"], point["tau"], name).with_(
                    fused=tuple(ev_cfg.fuse or ()), weight=w
                ),
                metrics=source.metrics,
            )
        )
        writer.copy(source, rows[-1].name)
        fusion_record = {
            "row": rows[-1].name,
            "scorers": list(ev_cfg.fuse or ()),
            "weight": w,
            "curve": [{"weight": wt, **p} for wt, pts in plan.fusion.items() for p in curve_points(pts)],
            "chosen": {"weight": w, **point},
        }
    selected = choice.selected
    rows.append(
        Row(
            name=SELECTED_ROW,
            point=_point(selected.row).with_(alpha=selected.alpha, tau=selected.tau, source=selected.source),
            metrics=selected.row.metrics,
        )
    )
    writer.copy(selected.row, SELECTED_ROW)
    return rows, variant_records, fusion_record


SELECTED_ROW = "AGRec (selected)"


def _point(row: Row) -> DecodePoint:
    """The decode point of a decoded row (every row the plan makes has one; a scorer's own row has none)."""
    if row.point is None:
        raise ValueError(f"row {row.name!r} is a scorer's own ranking, not a decoded point")
    return row.point


def fused_scorers(
    ev_cfg: EvalConfig, rankings: dict[str, dict[str, DecodeResult]], top_n: int, depth: int
) -> dict[float, str]:
    """With ``evaluation.fuse``, the fused rankings of its two scorers for every weight of
    ``evaluation.fusion_weights``, added to ``rankings`` under ``"<a>+<b>@<weight>"``; returns ``{weight: key}``
    (empty without ``fuse``)."""
    if ev_cfg.fuse is None:
        return {}
    a, b = ev_cfg.fuse
    out = {}
    for w in ev_cfg.weights_of_fusion():
        key = f"{fusion_name(a, b)}@{w:g}"
        rankings[key] = {t: fuse_rankings(rankings[a][t], rankings[b][t], w, top_n, depth) for t in rankings[a]}
        out[w] = key
    return out


def plan_fusion(
    ev: Evaluator, ev_cfg: EvalConfig, fused: dict[float, str], base: Row
) -> dict[float, dict[tuple[float, float], Row]]:
    """The fused scorer's grid: ``{weight: {(alpha, tau): row}}`` over the profile's α/τ grid (α = 0 is ``base``)."""
    if not fused:
        return {}
    name = agrec_row(fusion_name(*(ev_cfg.fuse or ())))
    return {
        w: {
            (alpha, tau): base
            if alpha == 0
            else ev.new_row(f"{name} w={w:g} α={alpha:g} τ={tau:g}", key, alpha=alpha, tau=tau)
            for tau in ev_cfg.tau_grid
            for alpha in ev_cfg.alpha_grid
        }
        for w, key in fused.items()
    }


def choose_fusion(
    fusion: dict[float, dict[tuple[float, float], Row]], metric: str, log: Callable[[str], None] = print
) -> tuple[float, dict[str, Any], Row]:
    """The fused grid's best validation point: ``(weight, {"alpha", "tau", "valid"}, row)``; ties go to the smaller
    α, then τ, then the earlier weight."""
    best = None
    for w, pts in fusion.items():
        point = choose(curve_points(pts), metric)
        if best is None or (point["valid"][metric], -point["alpha"], -point["tau"]) > (
            best[1]["valid"][metric],
            -best[1]["alpha"],
            -best[1]["tau"],
        ):
            best = (w, point, pts[(point["alpha"], point["tau"])])
    assert best is not None
    log(
        f"decode: fused scorers: chose weight {best[0]:g}, α={best[1]['alpha']:g}, τ={best[1]['tau']:g} on "
        f"validation {metric}"
    )
    return best


def plan_curves(
    ev: Evaluator,
    names: Sequence[str],
    main_name: str,
    base: Row,
    alpha_grid: Sequence[float],
    tau_grid: Sequence[float],
) -> dict[str, dict[tuple[float, float], Row]]:
    """Every scorer's α/τ grid as rows to decode: ``{scorer: {(alpha, tau): row}}``; α = 0 is ``base`` (the LM
    alone, whatever the scorer). The main scorer's points keep their short names (``α=0.2 τ=1``), the others'
    name their scorer (``AGRec (sasrec) α=0.2 τ=1``)."""
    out: dict[str, dict[tuple[float, float], Row]] = {}
    for name in names:
        prefix = "" if name == main_name else f"{agrec_row(name)} "
        out[name] = {
            (alpha, tau): base
            if alpha == 0
            else ev.new_row(f"{prefix}α={alpha:g} τ={tau:g}", name, alpha=alpha, tau=tau)
            for tau in tau_grid
            for alpha in alpha_grid
        }
    return out


def curve_points(points: dict[tuple[float, float], Row]) -> list[dict[str, Any]]:
    """A scorer's curve as ``[{"alpha", "tau", "valid"}]`` (grid order), for :func:`choose`."""
    return [{"alpha": alpha, "tau": tau, "valid": row.metrics["valid"]} for (alpha, tau), row in points.items()]


@dataclass
class Candidate:
    """One AGRec row competing for the shipped configuration: its chosen point and its whole grid."""

    source: str  # the AGRec row's name, e.g. "AGRec (sasrec)"
    row: Row  # the decoded row of the chosen point
    alpha: Any
    tau: float
    curve: list[tuple[Any, float, Row]]  # every grid point of this row, for the selection regret

    def record(self, metric: str) -> dict[str, Any]:
        """``results.json``'s ``selected``: the source row, its point, its metrics, and the selection regret on
        test (the test-best point of the same grid next to the chosen one; ties to the earlier point)."""
        test = [(alpha, tau, r.metrics["test"][metric]) for alpha, tau, r in self.curve if "test" in r.metrics]
        chosen_test = self.row.metrics["test"][metric]
        best = max(range(len(test)), key=lambda i: (test[i][2], -i)) if test else None
        regret = (
            None
            if best is None
            else {
                "metric": metric,
                "chosen": {"alpha": self.alpha, "tau": self.tau, "test": chosen_test},
                "test_best": {"alpha": test[best][0], "tau": test[best][1], "test": test[best][2]},
                "regret": test[best][2] - chosen_test,
            }
        )
        return {
            "row": SELECTED_ROW,
            "source": self.source,
            "scorer": _point(self.row).scorer,
            "alpha": self.alpha,
            "tau": self.tau,
            "valid": self.row.metrics["valid"],
            "test": self.row.metrics.get("test"),
            "regret": regret,
        }


def selection_candidates(
    names: Sequence[str],
    curves: dict[str, dict[tuple[float, float], Row]],
    chosen_by: dict[str, dict[str, Any]],
    chosen_variants: Sequence[tuple[DecodeVariant, list[tuple[Any, float, Row]], int]],
) -> list[Candidate]:
    """Every AGRec row at its own chosen point, main scorer first, then the other scorers, then the variants."""
    out = []
    for name in names:
        p = chosen_by[name]
        out.append(
            Candidate(
                agrec_row(name),
                curves[name][(p["alpha"], p["tau"])],
                p["alpha"],
                p["tau"],
                [(alpha, tau, row) for (alpha, tau), row in curves[name].items()],
            )
        )
    for v, plan, i in chosen_variants:
        out.append(Candidate(v.row, plan[i][2], plan[i][0], plan[i][1], list(plan)))
    return out


def select_row(candidates: Sequence[Candidate], metric: str) -> Candidate:
    """The candidate with the best validation ``metric``; ties go to the earlier one (the main scorer's row)."""
    if not candidates:
        raise ValueError("no AGRec row to select from")
    return max(enumerate(candidates), key=lambda ic: (ic[1].row.metrics["valid"][metric], -ic[0]))[1]


def plan_variant(ev: Evaluator, variant: DecodeVariant, base: Row, scorer: str) -> list[tuple[Any, float, Row]]:
    """One decode variant's grid (:mod:`agrec.decode.variants`) as ``(alpha, tau, row)`` points to decode on
    the validation item; a point with α = 0 everywhere and only graph settings changed is ``base``."""
    return [
        (
            alpha,
            tau,
            base
            if variant.is_plain(alpha)
            else ev.new_row(
                f"{variant.row} α={alpha_label(alpha)} τ={tau:g}", scorer, alpha=alpha, tau=tau, **variant.settings
            ),
        )
        for alpha, tau in variant.points()
    ]


def choose_variant(
    variant: DecodeVariant, plan: list[tuple[Any, float, Row]], metric: str, log: Callable[[str], None] = print
) -> int:
    """The index of the plan's point with the best validation ``metric`` (ties to the earlier point)."""
    i = choose_point(_variant_curve(plan), metric)
    log(f"decode: {variant.row}: chose α={alpha_label(plan[i][0])}, τ={plan[i][1]:g} on validation {metric}")
    return i


def variant_row(variant: DecodeVariant, plan: list[tuple[Any, float, Row]], i: int) -> tuple[Row, dict[str, Any], Row]:
    """A decode variant's table row ``AGRec [<name>]`` once its chosen point ``i`` has its test metrics, its
    record (``settings``, ``grid``, ``curve`` of validation metrics, ``chosen``) and the decoded row of the
    chosen point, whose rankings the table row copies."""
    curve = _variant_curve(plan)
    alpha, tau, source = plan[i]
    point = _point(source).with_(alpha=alpha, tau=tau, overrides=dict(variant.settings))
    row = Row(name=variant.row, point=point, metrics=dict(source.metrics))
    record = {
        "row": variant.row,
        "settings": variant.settings,
        "grid": {
            "alpha": [list(a) if isinstance(a, tuple) else a for a in variant.alpha_grid],
            "tau": list(variant.tau_grid),
        },
        "curve": curve,
        "chosen": curve[i],
        "rankings": slug(variant.row),
    }
    return row, record, source


def _variant_curve(plan: list[tuple[Any, float, Row]]) -> list[dict[str, Any]]:
    """A variant's validation curve: ``alpha``, ``tau`` and the validation metrics of each planned point."""
    return [{"alpha": a, "tau": t, "valid": row.metrics["valid"]} for a, t, row in plan]
