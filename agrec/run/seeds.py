"""Seeds as an axis: ``agrec seeds --config … --seeds 5`` runs the profile once per seed, then aggregates.

Which seeds: ``--seeds N`` (one integer) means the profile's seed and the next N − 1 (2024 -> 2024 …
2028); ``--seeds 2024,7,11`` (a comma-separated list; ``7,`` for one seed) means exactly those.

Where: the profile's own seed uses the profile's normal folders, so the main job's run *is* one of the
seeds and is reused, not recomputed. Every other seed is the same profile with ``seed`` and
``pipeline.variant = "seeds/<seed>"`` overridden, i.e. ``runs/<dataset>/<profile>/seeds/<seed>/`` and
``reports/<dataset>/<profile>/seeds/<seed>/`` (:meth:`Profile.run_dir` builds the path; the same run by
hand: ``agrec run --config … --set seed=7 --set pipeline.variant=seeds/7``). Each seed's run folder is
complete and self-describing; only the data stage, whose artefacts do not depend on the seed, is copied
from a run that already has it (its record then names the seed folder's config and ``copied_from``).

Seeds run one after another (each stage uses the machine's cores). The aggregate lands in
``reports/<dataset>/<profile>/seeds/``: ``summary.md/.csv`` (per decode row: mean ± sd over seeds of the
test metrics, n seeds, each seed's α and τ, paired p-values of the main AGRec row against the row pooled
over seeds, bootstrap CIs, in how many seeds AGRec's mean beats the row) and ``significance.md/.csv``
(every test, per seed and pooled). The statistics are :mod:`agrec.analysis.significance`'s.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, cast

import numpy as np
import pandas as pd

from agrec.canonical import keyed_record
from agrec.config import Profile, load_profile
from agrec.decode.variants import slug
from agrec.errors import AgrecError, shorten
from agrec.manifest import MANIFEST, write_manifest
from agrec.io import atomic_dir, atomic_path, atomic_write_json, atomic_write_text
from agrec.run.rundir import RunDir
from agrec.run.runlock import locked
from agrec.decode.outcomes import OUTCOMES, decode_identity, outcome_gains, read_outcomes
from agrec.decode.stage import RESULTS, SECTIONS, STAGE, read_results
from agrec.analysis.significance import paired_test, rows_gains
from agrec.run.lineage import stage_status

MANIFEST_KIND = "agrec seeds aggregate"
SEEDS_DIR = "seeds"  # sub-folder of the profile's run/report folders holding the other seeds
METRICS_TARGET = "test"  # the aggregate reports test numbers; validation only chose α


MAX_SEEDS = 1000  # a bound on one command's seeds: each is a full pipeline run


def parse_seeds(spec: str, profile_seed: int) -> list[int]:
    """``"5"`` -> the profile's seed and the next 4; ``"2024,7,11"`` / ``"7,"`` -> exactly those."""
    text = str(spec).strip()
    try:
        if "," in text:
            parts = [s for s in text.split(",") if s.strip()]
            if len(parts) > MAX_SEEDS:
                raise AgrecError(f"--seeds: {len(parts)} seeds listed, at most {MAX_SEEDS}")
            seeds = [int(s) for s in parts]
        else:
            n = int(text)
            if not 1 <= n <= MAX_SEEDS:
                raise AgrecError(f"--seeds: a count must be in [1, {MAX_SEEDS}], got {shorten(n)}")
            seeds = [profile_seed + i for i in range(n)]
    except ValueError:
        raise AgrecError(
            f"--seeds expects a count (5) or a comma-separated list of seeds (2024,7,11), got {shorten(spec)}"
        ) from None
    if not seeds:
        raise AgrecError(f"--seeds: no seed in {shorten(spec)}")
    if len(set(seeds)) != len(seeds):
        raise AgrecError(f"--seeds: a seed is listed twice: {shorten(seeds)}")
    bad = [s for s in seeds if not 0 <= s < 2**32]
    if bad:
        raise AgrecError(f"--seeds: seeds must be in [0, 2**32) (NumPy's range), got {shorten(bad)}")
    return seeds


def seed_overrides(base: Profile, seed: int, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Profile overrides of one seed's run: none added for the profile's own seed, else the seed and
    its variant folder (nested under a variant the base profile already has)."""
    ov = dict(overrides or {})
    if seed == base.seed:
        return ov
    parts = [base.pipeline.variant] if base.pipeline.variant else []
    return {**ov, "seed": seed, "pipeline.variant": "/".join([*parts, SEEDS_DIR, str(seed)])}


@dataclass
class SeedRun:
    seed: int
    overrides: dict[str, Any]
    profile: Profile


def plan_seeds(config_path: str | Path, seeds: list[int], overrides: dict[str, Any] | None = None) -> list[SeedRun]:
    """Load (and so validate) every seed's profile before anything runs."""
    base = load_profile(config_path, overrides)
    out = []
    for s in seeds:
        ov = seed_overrides(base, s, overrides)
        out.append(SeedRun(seed=s, overrides=ov, profile=load_profile(config_path, ov)))
    return out


def summary_dir(base: Profile) -> Path:
    """``reports/<dataset>/<profile>/seeds/``: where the aggregate goes."""
    return base.report_dir / SEEDS_DIR


def default_reference(scorer: str) -> str:
    """The row the aggregate tests the others against unless told otherwise: ``AGRec (<evaluation.scorer>)``."""
    return f"AGRec ({scorer})"


def reference_subdir(reference: str) -> str:
    """The sub-folder of ``seeds/`` holding the aggregate against another row: ``vs_<row slug>``."""
    return f"vs_{slug(reference)}"


def share_data_stage(sources: list[Path], dest: SeedRun, log: Callable[[str], None] = print) -> Path | None:
    """Copy the data stage into ``dest``'s run folder from the first source run that has it for the same
    ``data`` section (the stage does not depend on the seed). Nothing happens when ``dest`` already has
    a data record. The copy's record is rewritten to describe ``dest`` (its seed and config) and names
    the run it was copied from; the data stage's own reuse check still decides whether it is current.
    Returns the source used, or None."""
    dst = RunDir(dest.profile.run_dir)
    if dst.read_record("data") is not None:
        return None
    want = dest.profile.key_dict()["data"]
    for src_root in sources:
        src = RunDir(src_root)
        if src.root.resolve() == dst.root.resolve():
            continue
        rec = src.read_record("data")
        if rec is None or keyed_record(Profile, rec.get("config", {})).get("data") != want:
            continue
        with atomic_dir(dst.root / "data") as tmp:
            shutil.copytree(src.root / "data", tmp, dirs_exist_ok=True)
            rec = {
                **rec,
                "seed": dest.seed,
                "config": dest.profile.to_dict(),
                "copied_from": os.path.relpath(src.root, dst.root),
            }
            atomic_write_json(tmp / RunDir.RECORD, rec)
        log(f"agrec seeds: seed {dest.seed}: data stage copied from {src.root}")
        return src.root
    return None


def run_seeds(
    config_path: str | Path,
    seeds: list[int],
    stages: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
    notebooks_dir: Path | None = None,
    reference: str | None = None,
    n_resamples: int = 9999,
    log: Callable[[str], None] = print,
    run_pipeline: Callable[..., Any] | None = None,
) -> "SeedsSummary | None":
    """Run the pipeline (``agrec.run.pipeline.run_pipeline``) once per seed, sequentially, then aggregate the
    seeds whose decode stage has finished (None when none has, e.g. ``stages`` without decode)."""
    if run_pipeline is None:
        from agrec.run.pipeline import run_pipeline as default_runner

        run_pipeline = default_runner
    plan = plan_seeds(config_path, seeds, overrides)
    base = load_profile(config_path, overrides)
    with locked(base.run_dir):  # the seed folders live under it, and so does the aggregate's report folder
        return _run_seeds(
            config_path,
            plan,
            base,
            seeds,
            stages,
            overrides,
            force,
            notebooks_dir,
            reference,
            n_resamples,
            log,
            run_pipeline,
        )


def _run_seeds(
    config_path: str | Path,
    plan: list[SeedRun],
    base: Profile,
    seeds: list[int],
    stages: list[str] | None,
    overrides: dict[str, Any] | None,
    force: bool,
    notebooks_dir: Path | None,
    reference: str | None,
    n_resamples: int,
    log: Callable[[str], None],
    run_pipeline: Callable[..., Any],
) -> "SeedsSummary | None":
    sources = [base.run_dir]
    for i, sr in enumerate(plan, 1):
        log(f"agrec seeds: [{i}/{len(plan)}] seed {sr.seed} -> {sr.profile.run_dir}")
        share_data_stage(sources, sr, log=log)
        run_pipeline(
            config_path, stages=stages, overrides=sr.overrides, force=force, notebooks_dir=notebooks_dir, log=log
        )
        sources.append(sr.profile.run_dir)
    finished = [sr for sr in plan if _decode_done(sr)]
    if not finished:
        log("agrec seeds: no seed has a finished decode stage yet; no summary written")
        return None
    return aggregate_seeds(config_path, seeds, overrides, reference=reference, n_resamples=n_resamples, log=log)


def discover_seeds(base: Profile) -> list[int]:
    """Seeds with a finished decode stage: the profile's own run and every ``seeds/<seed>/`` beside it, in the
    run folders or, for a seed run elsewhere, in the report folders (their ``results/decode_outcomes.npz``). The
    profile's seed comes first, then the others in increasing order, wherever each was found (the aggregate does
    not depend on which folders happen to be on this machine)."""
    found = set()
    rec = RunDir(base.run_dir).read_record("decode")
    if rec is not None:
        if int(rec.get("seed", -1)) == base.seed:  # another seed there is not one of the axis
            found.add(base.seed)
    elif not _has_records(base.run_dir) and (base.report_dir / "results" / OUTCOMES).is_file():
        found.add(base.seed)  # its outcomes are read (and a wrong seed named) by the aggregate
    for root, has in (
        (base.run_dir, lambda d: RunDir(d).read_record("decode") is not None),
        (base.report_dir, lambda d: (d / "results" / OUTCOMES).is_file()),
    ):
        seeds_root = root / SEEDS_DIR
        if seeds_root.is_dir():
            found.update(int(d.name) for d in seeds_root.iterdir() if d.name.isdigit() and has(d))
    return ([base.seed] if base.seed in found else []) + sorted(found - {base.seed})


def _has_records(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds any stage's record: a run folder that is here (finished or not)."""
    return run_dir.is_dir() and any(run_dir.glob(f"*/{RunDir.RECORD}"))


def _run_here(sr: SeedRun) -> bool:
    """The seed's run folder is on this machine, so it (not its report) is what counts: finished and current, or
    not finished. Its report's outcomes stand in only for a run folder that is absent."""
    return _has_records(sr.profile.run_dir)


def _run_decode_done(sr: SeedRun) -> bool:
    run = RunDir(sr.profile.run_dir)
    return run.read_record(STAGE) is not None and (run.root / STAGE / RESULTS).is_file()


def _decode_done(sr: SeedRun) -> bool:
    """The seed's decode stage has finished: in its run folder, or, where no run folder is here (a run made
    elsewhere), recorded in its report. A run folder here whose decode stage is unfinished is unfinished."""
    if _run_here(sr):
        return _run_decode_done(sr)
    return (sr.profile.report_dir / "results" / OUTCOMES).is_file()


@dataclass
class SeedsSummary:
    """The aggregate: ``table`` (one line per decode row), ``tests`` (every paired test, per seed and
    pooled), ``seeds`` (one line per seed: its chosen α, τ and folders), and where they were written."""

    table: pd.DataFrame
    tests: pd.DataFrame
    seeds: pd.DataFrame
    reference: str
    folder: Path


def aggregate_seeds(
    config_path: str | Path,
    seeds: list[int] | None = None,
    overrides: dict[str, Any] | None = None,
    reference: str | None = None,
    n_resamples: int = 9999,
    log: Callable[[str], None] = print,
    write: bool = True,
) -> SeedsSummary:
    """Build (and write) the aggregate of the finished seeds among ``seeds`` (default: every seed with a
    decode record). A seed whose decode stage ran with another configuration (beyond seed and folder) is
    an error: its numbers would not belong in this table.

    The aggregate against the default reference, ``AGRec (<evaluation.scorer>)``, goes to ``seeds/``; against
    another row to ``seeds/vs_<row slug>/`` (``AGRec (sasrec)`` -> ``seeds/vs_agrec_sasrec/``), so that testing
    another row never overwrites the main summary."""

    base = load_profile(config_path, overrides)
    seeds = discover_seeds(base) if seeds is None else seeds
    plan = plan_seeds(config_path, seeds, overrides)
    done = [sr for sr in plan if _decode_done(sr)]
    missing = [sr.seed for sr in plan if sr.seed not in {d.seed for d in done}]
    if not done:
        raise AgrecError(f"no finished decode stage for seed(s) {seeds} under {base.run_dir} (run `agrec seeds` first)")
    if missing:
        log(f"agrec seeds: seed(s) {missing} have no finished decode stage; aggregating {[s.seed for s in done]}")
    reference = reference or default_reference(base.evaluation.scorer)
    ks = list(base.evaluation.ks)
    metrics = [f"{m}@{k}" for k in ks for m in ("HR", "NDCG")]

    per_seed: dict[int, dict[str, Any]] = {}
    users_ref = targets_ref = None
    first = None
    for sr in done:
        ev = _seed_evidence(sr, ks)
        if users_ref is None:
            users_ref, targets_ref, first = ev["users"], ev["targets"], sr.seed
        elif not (
            np.array_equal(ev["users"], users_ref) and np.array_equal(ev["targets"], cast(np.ndarray, targets_ref))
        ):
            raise AgrecError(
                f"{ev['where']}: seed {sr.seed} was ranked for other users or test items than seed {first}; "
                f"seeds cannot be paired per user"
            )
        if reference not in ev["rows"]:
            raise AgrecError(f"{ev['where']}: seed {sr.seed} has no row {reference!r} to test the others against")
        per_seed[sr.seed] = {**ev, "sr": sr}

    order = list(dict.fromkeys(n for s in per_seed.values() for n in s["rows"]))
    seed_list = list(per_seed)
    tests, lines = [], []
    for name in order:
        have = [s for s in seed_list if name in per_seed[s]["rows"]]
        line: dict[str, Any] = {"method": name, "n_seeds": len(have)}
        for m in metrics:
            vals = np.array([per_seed[s]["rows"][name]["metrics"][METRICS_TARGET][m] for s in have])
            line[f"{m} mean"] = float(vals.mean())
            line[f"{m} sd"] = float(vals.std(ddof=1)) if len(vals) > 1 else math.nan
        line["alpha per seed"] = _per_seed_setting(per_seed, have, name, "alpha")
        line["tau per seed"] = _per_seed_setting(per_seed, have, name, "tau")
        if name != reference:
            both = [s for s in have if reference in per_seed[s]["rows"]]
            for m in metrics:
                ref = np.stack([per_seed[s]["gains"][reference][m] for s in both])
                oth = np.stack([per_seed[s]["gains"][name][m] for s in both])
                for j, s in enumerate(both):
                    t = paired_test(ref[j], oth[j], m, n_resamples=n_resamples, seed=s)
                    tests.append({"method": name, "seed": str(s), **asdict(t)})
                t = paired_test(ref, oth, m, n_resamples=n_resamples, seed=0)
                tests.append({"method": name, "seed": "pooled", **asdict(t)})
                wins = sum(
                    per_seed[s]["rows"][reference]["metrics"][METRICS_TARGET][m]
                    > per_seed[s]["rows"][name]["metrics"][METRICS_TARGET][m]
                    for s in both
                )
                line[f"p {m}"] = t.p_value
                line[f"diff {m}"] = t.mean_diff
                line[f"CI low {m}"] = t.ci_low
                line[f"CI high {m}"] = t.ci_high
                line[f"wins {m}"] = f"{wins}/{len(both)}"
        lines.append(line)
    table = pd.DataFrame(lines)
    tests_df = pd.DataFrame(tests)
    seeds_df = pd.DataFrame(
        [
            {
                "seed": s,
                "alpha": per_seed[s]["chosen"]["alpha"],
                "tau": per_seed[s]["chosen"]["tau"],
                f"valid {base.evaluation.select_metric}": per_seed[s]["chosen"]["valid"][base.evaluation.select_metric],
                # run: this machine's run folder (checked current); report: the outcomes its report recorded
                "source": per_seed[s]["source"],
                "run_dir": str(per_seed[s]["sr"].profile.run_dir),
                "report_dir": str(per_seed[s]["sr"].profile.report_dir),
            }
            for s in seed_list
        ]
    )
    folder = summary_dir(base)
    if reference != default_reference(base.evaluation.scorer):
        folder = folder / reference_subdir(reference)
    summary = SeedsSummary(table=table, tests=tests_df, seeds=seeds_df, reference=reference, folder=folder)
    if write:
        with locked(base.run_dir):
            write_summary(summary, base, metrics)
        log(f"agrec seeds: {len(seed_list)} seed(s) aggregated -> {summary.folder / 'summary.md'}")
    return summary


def _seed_evidence(sr: SeedRun, ks: list[int]) -> dict[str, Any]:
    """One seed's rows, chosen point and per-user test gains: from its run folder when that holds the decode
    stage, else from its report's ``results/decode_outcomes.npz`` (a seed run on another machine or day, whose
    run folder is not here)."""
    run = RunDir(sr.profile.run_dir)
    folder = run.root / STAGE
    if not _run_here(sr):
        return _report_evidence(sr, ks)
    rec = run.read_record(STAGE) or {}
    _check_record(rec, sr, SECTIONS)
    # Only what `agrec status` calls current is aggregated: a hand-edited results.json, a truncated
    # rankings file or a stage whose inputs changed would put numbers in the table that no run produced.
    st = stage_status(sr.profile, run, STAGE)
    if not st.current:
        raise AgrecError(
            f"{folder}: seed {sr.seed}'s decode stage is {st.state} ({'; '.join(st.reasons)}), "
            f"so its numbers are not aggregated; rerun that seed (agrec seeds --seeds "
            f"{sr.seed}, … with the same options) and aggregate again"
        )
    res = read_results(folder)
    rows = {r["name"]: r for r in res["rows"]}
    users, targets, gains = rows_gains(folder, list(rows), METRICS_TARGET, ks)
    return {
        "rows": rows,
        "gains": gains,
        "chosen": res["chosen"],
        "users": users,
        "targets": targets,
        "where": folder,
        "source": "run",
    }


def _report_evidence(sr: SeedRun, ks: list[int]) -> dict[str, Any]:
    """:func:`_seed_evidence` from the seed's report folder. Its configuration is checked as a run's record is;
    whether its inputs are still current cannot be (the run folder is elsewhere), so the summary names the
    seed's source."""
    out = read_outcomes(sr.profile.report_dir)
    assert out is not None
    want = decode_identity(sr.profile)
    _check_record({"seed": out.seed, "config": out.config}, sr, tuple(want["config"]), where=out.path)
    for k, what in (("protocol", "decode protocol"), ("decode_key", "decode stage key")):
        if getattr(out, k) != want[k]:
            raise AgrecError(
                f"{out.path}: seed {sr.seed} was decoded under {what} {getattr(out, k)!r}, this profile's is "
                f"{want[k]!r}; its numbers are not this configuration's: rerun that seed"
            )
    return {
        "rows": {r["name"]: r for r in out.rows},
        "gains": {r["name"]: outcome_gains(out, r["name"], ks) for r in out.rows},
        "chosen": out.chosen,
        "users": out.users,
        "targets": out.targets,
        "where": out.path,
        "source": "report",
    }


def _check_record(rec: dict[str, Any], sr: SeedRun, sections: tuple[str, ...], where: Path | None = None) -> None:
    where = where or sr.profile.run_dir / "decode"
    if int(rec.get("seed", -1)) != sr.seed:
        raise AgrecError(f"{where}: the decode record is of seed {rec.get('seed')}, expected seed {sr.seed}")
    cfg, want = rec.get("config"), sr.profile.key_dict()
    if not isinstance(cfg, dict):
        raise AgrecError(f"{where}: the decode record holds no config; cannot tell which configuration it ran")
    cfg = keyed_record(Profile, cfg)  # runtime keys (progress bars, caches) may differ between seeds
    diff = sorted(k for s in sections for k in _diff_keys(cfg.get(s), want[s], s))
    if diff:
        raise AgrecError(
            f"{where}: seed {sr.seed}'s decode stage ran with another configuration "
            f"(differs in {', '.join(diff)}); rerun `agrec seeds` with the same --set options"
        )


def _diff_keys(a: Any, b: Any, prefix: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [k for key in sorted(set(a) | set(b)) for k in _diff_keys(a.get(key), b.get(key), f"{prefix}.{key}")]
    return [] if a == b else [prefix]


def _per_seed_setting(per_seed: dict[int, dict[str, Any]], seeds: list[int], name: str, key: str) -> str:
    vals = [per_seed[s]["rows"][name].get("settings", {}).get(key) for s in seeds]
    if all(v is None for v in vals):
        return ""
    return ", ".join("—" if v is None else f"{v:g}" if isinstance(v, (int, float)) else str(v) for v in vals)


def mean_sd(mean: float, sd: float, digits: int = 4) -> str:
    """``0.1792 ± 0.0051``; a lone seed (sd NaN) shows its value alone."""
    if math.isnan(sd):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def format_p(p: float | None) -> str:
    """p-values in the tables: 3 significant digits, ``<1e-4`` below that."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    return "<1e-4" if p < 1e-4 else f"{p:.3g}"


def write_summary(summary: SeedsSummary, base: Profile, metrics: list[str]) -> None:
    """Write ``summary.md/.csv``, ``significance.md/.csv`` and ``seeds.csv`` into ``seeds/``."""
    t, ref = summary.table, summary.reference
    md = pd.DataFrame({"method": t["method"], "n seeds": t["n_seeds"]})
    for m in metrics:
        md[m] = [mean_sd(a, b) for a, b in zip(t[f"{m} mean"], t[f"{m} sd"], strict=True)]
    md["α per seed"], md["τ per seed"] = t["alpha per seed"], t["tau per seed"]
    for m in metrics:
        md[f"p {m}"] = [format_p(v) for v in t[f"p {m}"]] if f"p {m}" in t else ""
    for m in metrics:
        if m.startswith("NDCG") and f"CI low {m}" in t:
            md[f"Δ{m} 95% CI"] = [
                ("" if pd.isna(lo) else f"[{lo:+.4f}, {hi:+.4f}]")
                for lo, hi in zip(t[f"CI low {m}"], t[f"CI high {m}"], strict=True)
            ]
    for m in metrics:
        if m.endswith("@10") and f"wins {m}" in t:
            md[f"{ref} better {m}"] = t[f"wins {m}"].fillna("")
    seeds = ", ".join(str(s) for s in summary.seeds["seed"])
    text = (
        f"# {base.data.dataset} / {base.name}: {len(summary.seeds)} seeds ({seeds}), {METRICS_TARGET}\n\n"
        f"Mean ± sd over seeds (sample sd). p: paired tests of **{ref}** against each row over the same users, "
        f"pooled over seeds by averaging each user's outcome over the seeds first (HR: exact sign test = exact "
        f"McNemar for one seed; NDCG: Wilcoxon signed-rank; Δ CI: paired bootstrap BCa of the mean difference "
        f"{ref} − row over users). 'better': seeds in which {ref}'s mean is higher. Per-seed tests: "
        f"significance.md; method: agrec/analysis/significance.py.\n\n"
        + md.to_markdown(index=False, disable_numparse=True)
        + "\n\n## Seeds\n\nsource: *run*, the seed's run folder here, checked current as `agrec status` checks it; "
        "*report*, the per-user outcomes its report recorded (`results/decode_outcomes.npz`, a run made elsewhere: "
        "its configuration is checked, whether its inputs are still current cannot be).\n\n"
        + summary.seeds.drop(columns=["run_dir", "report_dir"])
        .astype({"seed": str})
        .to_markdown(index=False, floatfmt=".4f")
        + "\n"
    )
    folder = summary.folder
    (folder / MANIFEST).unlink(missing_ok=True)  # while the files change, no manifest vouches for them
    atomic_write_text(folder / "summary.md", text)
    _write_csv(folder / "summary.csv", t)
    _write_csv(folder / "significance.csv", summary.tests)
    _write_csv(folder / "seeds.csv", summary.seeds)
    written = ["summary.md", "summary.csv", "significance.csv", "seeds.csv"]
    if not summary.tests.empty:
        written.append("significance.md")
        sig = summary.tests.copy()
        sig["p_value"] = [format_p(p) for p in sig["p_value"]]
        for c in ("reference_mean", "other_mean", "mean_diff", "ci_low", "ci_high"):  # HR tests have no interval
            sig[c] = ["" if pd.isna(v) else f"{v:.4f}" for v in sig[c]]
        atomic_write_text(
            folder / "significance.md",
            f"# Paired tests of {ref} against each row ({METRICS_TARGET})\n\n"
            + sig.to_markdown(index=False, disable_numparse=True)
            + "\n",
        )
    else:
        (folder / "significance.md").unlink(missing_ok=True)
    write_manifest(folder, written, MANIFEST_KIND)


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
