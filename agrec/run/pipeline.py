"""Runs the pipeline's notebooks in order with papermill: ``agrec run --config …``.

Each stage is a parameterised notebook (``notebooks/NN_<stage>.ipynb``); papermill injects the
profile path and overrides, executes it in a fresh kernel and writes the executed copy into the
report folder. The notebook calls into ``agrec`` and writes its figures/tables there too. A failed
stage stops the run with the stage name and the failing cell; its partial notebook is kept as
``NN_<stage>.FAILED.ipynb`` for inspection and no ``NN_<stage>.ipynb`` is left behind.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from agrec.config import Profile, STAGE_NOTEBOOKS, load_profile
from agrec.errors import AgrecError, ConfigError, StageError
from agrec.io import atomic_path, atomic_write_json, orphan_writer, pid_alive, remove_orphaned_temps, temp_prefix
from agrec.paths import safe_component, safe_join
from agrec.progress import follow as follow_progress, kernel_ipc_config
from agrec.run.provenance import library_versions
from agrec.run.resources import StageMeter, StageUsage
from agrec.run.rundir import RunDir, ensure_writable
from agrec.run.runlock import locked
from agrec.fingerprint import sha256_file, sha256_json
from agrec.run.lineage import REPORT_ONLY, config_key, pipeline_status, stage_folders, stage_status, upstream
from agrec.run import outputs as report_outputs

if TYPE_CHECKING:
    import pandas as pd

    from agrec.run.lineage import StageStatus


def default_notebooks_dir() -> Path:
    """``notebooks/`` of the source checkout this package runs from."""
    return Path(__file__).resolve().parents[2] / "notebooks"


def _kernel_manager_class(kernel_log: Path | None, meter: StageMeter | None = None):
    """A kernel manager whose kernel process writes its own stdout/stderr to ``kernel_log``, and which lets
    ``meter`` sample the kernel process (peak memory, CPU time) just before shutting it down.

    What cells print reaches the notebook through the kernel protocol either way; the process streams
    only carry the kernel's housekeeping (the "running over TCP without encryption" warning, and the
    ZMQ tracebacks of a kernel shut down mid-cell by Ctrl-C), which would otherwise flood the terminal.
    """
    from jupyter_client.manager import AsyncKernelManager

    log_path = kernel_log

    class _StageKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            if log_path is None:
                await super()._async_launch_kernel(kernel_cmd, **kw)
                return
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "ab") as f:  # the child keeps its own copy of the descriptor
                kw.setdefault("stdout", f)
                kw.setdefault("stderr", f)
                await super()._async_launch_kernel(kernel_cmd, **kw)

        async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:  # type: ignore[override]
            if meter is not None:
                # the process's high-water mark and CPU time are gone with it: read them while it still runs
                meter.sample_kernel(getattr(getattr(self, "provisioner", None), "pid", None))
            await super().shutdown_kernel(now=now, restart=restart)

    return _StageKernelManager


TMP_SUFFIX = ".tmp.ipynb"


def orphan_partials(output: Path) -> list[Path]:
    """The temporary notebooks of executions into ``output`` whose writer is gone.

    A running execution writes ``.<stem>.pid<pid>@<host>.<random>.tmp.ipynb`` beside ``output``
    (:func:`agrec.io.temp_prefix`) and renames it at the end (or removes it on an error or interrupt); only a
    killed process leaves one. Older versions of agrec wrote ``pid<pid>`` without the host (taken as this one)
    or no writer at all (their executions are over).
    """
    found = []
    for p in output.parent.glob(f".{output.stem}.*{TMP_SUFFIX}"):
        middle = p.name[len(output.stem) + 2 : -len(TMP_SUFFIX)]  # "<writer>.<random>", or "<random>" before
        if "." not in middle:
            found.append(p)
            continue
        head = middle.split(".", 1)[0]
        if "@" in head:
            if orphan_writer(p) is not None:
                found.append(p)
        elif head.startswith("pid") and head[3:].isdigit() and not pid_alive(int(head[3:])):
            found.append(p)
    return sorted(found)


def execute_notebook(
    notebook: Path,
    output: Path,
    parameters: dict[str, Any],
    stage: str,
    kernel_name: str = "python3",
    timeout_s: int | None = None,
    progress_bar: bool | None = None,
    kernel_log: Path | None = None,
    meter: StageMeter | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Execute ``notebook`` with papermill into ``output`` atomically.

    On a cell error, raise :class:`StageError` naming the stage, the cell and the exception, and
    keep the partial notebook as ``<output stem>.FAILED.ipynb``. On an interrupt (Ctrl-C, SIGTERM through
    :func:`agrec.cli.main`) the kernel is shut down and nothing is left in the report folder; a report folder
    (and its parents) that this call created is removed again when empty.
    ``kernel_log``: where the kernel process's own output goes (None: the terminal). ``meter``: sampled
    (:meth:`StageMeter.sample_kernel`) just before the kernel is shut down. A partial notebook that a killed
    execution of the same output left behind (SIGKILL, a power cut: no handler ran) is removed first, named in
    ``log``.
    """
    import papermill as pm  # heavy import; only the runner needs it

    if not notebook.is_file():
        raise StageError(f"stage '{stage}': notebook {notebook} not found")
    created = _missing_folders(output.parent, within=output.parent.parent)
    output.parent.mkdir(parents=True, exist_ok=True)
    failed = output.with_name(output.stem + ".FAILED.ipynb")
    for orphan in orphan_partials(output):
        orphan.unlink(missing_ok=True)
        if log is not None:
            log(f"    removed {orphan.name}: the partial notebook of an execution that was killed")
    # and whatever else killed writers left in the report folder (figures, tables, pages)
    remove_orphaned_temps(output.parent, recursive=True, log=None if log is None else lambda m: log(f"    {m}"))
    # the writer in the name tells a later execution whether that writer is still alive
    fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(output.stem), suffix=TMP_SUFFIX, dir=output.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    if progress_bar is None:  # papermill's cells bar would fight the inner progress line for the terminal
        progress_bar = False
    try:
        # papermill's own log would repeat what StageError says, or chatter while an interrupt shuts the kernel down
        logging.getLogger("papermill").setLevel(logging.CRITICAL)
        # The stage's inner progress (epochs, users, items) is printed from the kernel's events file; the
        # kernel talks to us over IPC sockets, not unencrypted TCP (whose ipykernel warning is noise here).
        # Its connection file and sockets go to a private folder of this execution (mode 0700, removed after).
        with (
            follow_progress(output.with_name(f".{output.stem}.progress.jsonl"), stream=sys.stdout),
            tempfile.TemporaryDirectory(prefix="agrec-kernel-") as kernel_dir,
        ):
            pm.execute_notebook(
                str(notebook),
                str(tmp),
                parameters=parameters,
                cwd=str(notebook.parent),
                kernel_name=kernel_name,
                progress_bar=progress_bar,
                execution_timeout=timeout_s,
                log_output=False,
                config=kernel_ipc_config(kernel_dir),
                kernel_manager_class=_kernel_manager_class(kernel_log, meter),
            )
    except pm.PapermillExecutionError as e:
        os.replace(tmp, failed)
        raise StageError(
            f"stage '{stage}' failed in {notebook.name}, cell {e.cell_index} "
            f"(execution count {e.exec_count}): {e.ename}: {e.evalue}\n"
            f"the partial notebook is at {failed}"
        ) from None
    except KeyboardInterrupt:
        tmp.unlink(missing_ok=True)
        _remove_if_empty(created)
        # tasks of the shut-down kernel client are abandoned on purpose; asyncio would report each at exit
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        raise
    except Exception as e:
        from nbclient.exceptions import DeadKernelError

        if not isinstance(e, DeadKernelError):
            tmp.unlink(missing_ok=True)
            _remove_if_empty(created)
            raise
        os.replace(tmp, failed)
        raise StageError(
            f"stage '{stage}': the kernel running {notebook.name} died (killed, or out of memory?); "
            f"its own output is in {kernel_log or 'the terminal'}; the partial notebook is at "
            f"{failed}"
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        _remove_if_empty(created)
        raise
    _tidy_papermill_metadata(tmp, notebook, output)
    os.replace(tmp, output)
    failed.unlink(missing_ok=True)
    return output


def _missing_folders(folder: Path, within: Path) -> list[Path]:
    """``folder`` and those of its ancestors below ``within`` that do not exist yet, deepest first: what
    ``mkdir(parents=True)`` is about to create that this writer may remove again. ``within`` and the folders above
    it (a dataset's report folder, which other profiles share) are never listed; a ``folder`` outside ``within``
    lists only itself."""
    if not folder.is_relative_to(within):
        return [] if folder.exists() else [folder]
    missing = []
    for f in (folder, *folder.parents):  # reaches ``within`` before it could leave it
        if f == within or f.exists():
            break
        missing.append(f)
    return missing


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove the folders an interrupted execution created (deepest first) where nothing else was put in them,
    so that a stopped run leaves no empty report folder behind (a seed's, a sweep point's)."""
    for f in folders:
        try:
            f.rmdir()
        except FileNotFoundError:  # gone already: its parent may still be empty
            continue
        except OSError:  # not empty: another writer's file, kept with every folder above it
            return


def _tidy_papermill_metadata(executed: Path, notebook: Path, output: Path) -> None:
    """Record the final, repository-relative paths instead of the temp file's absolute path."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    meta = nb.metadata.get("papermill", {})
    meta["input_path"] = os.path.relpath(notebook, output.parent)
    meta["output_path"] = output.name
    nbformat.write(nb, executed)


def report_key(profile: Profile, run: RunDir, stage: str, notebook: Path, params: dict[str, Any]) -> str:
    """What a stage's executed notebook depends on: the notebook's own content, its parameters, the
    stage's config key and the digests of its record and its upstream records. A report whose key
    matches need not be executed again."""

    digests = {s: run.digest(s) for s in (*upstream(profile, stage), stage) if not (s == stage and s in REPORT_ONLY)}
    return sha256_json(
        {"notebook": sha256_file(notebook), "params": params, "config": config_key(profile, stage), "digests": digests}
    )[:32]


def _source(profile: Profile) -> str:
    """The profile's file: the notebooks are given its path (a profile built in code has none)."""
    if profile.source is None:
        raise AgrecError(
            f"profile {profile.name!r} was not read from a file: the pipeline passes its path to the notebooks"
        )
    return profile.source


def _usage_note(usage: StageUsage) -> str:
    """`` (peak 1.20 GiB, 2,400 CPU s, other work 30 CPU s, steal 12 s)`` for the log line; empty where nothing
    was measured (steal only where there was some)."""
    parts = []
    if usage.peak_rss_mib is not None:
        parts.append(f"peak {usage.peak_rss_mib / 1024:.2f} GiB")
    if usage.cpu_s is not None:
        parts.append(f"{usage.cpu_s:,.0f} CPU s")
    if usage.others_cpu_s is not None:
        parts.append(f"other work {usage.others_cpu_s:,.0f} CPU s")
    if usage.steal_s:
        parts.append(f"steal {usage.steal_s:,.0f} s")
    return f" ({', '.join(parts)})" if parts else ""


def _stamp_report_key(
    output: Path,
    key: str,
    seconds: float,
    usage: StageUsage | None = None,
    refreshed: bool = False,
    outputs: list[str] | None = None,
) -> None:
    """Record in the notebook the key of what it was made from, how long its execution took, what it used,
    whether it only loaded artefacts computed before (a later run that reuses it reports these, not those of
    some other computation) and which report files it wrote (``outputs``, :mod:`agrec.run.outputs`)."""
    import nbformat

    nb = nbformat.read(output, as_version=4)
    stamp: dict[str, Any] = {"report_key": key, "seconds": seconds, "refreshed": refreshed}
    if usage is not None:
        stamp["resources"] = usage.to_dict()
    if outputs is not None:
        stamp["outputs"] = outputs
    nb.metadata.setdefault("agrec", {}).update(stamp)
    with atomic_path(output) as tmp:
        nbformat.write(nb, tmp)


def _stage_reports(report_dir: Path, exclude: Path | None = None) -> list[Path]:
    """The executed stage notebooks in ``report_dir`` (any stage, whether or not this run lists it)."""
    names = set(STAGE_NOTEBOOKS.values())
    return sorted(p for p in report_dir.glob("*.ipynb") if p.name in names and p != exclude)


def _remove_unclaimed(report_dir: Path, log: Callable[[str], None]) -> None:
    """Remove the stage-written report files that no executed stage notebook of the folder claims, once every
    one of them records its outputs: files left by a run older than every stage's last execution (made before
    the runner recorded outputs, or by a stage the profile no longer runs whose notebook is gone)."""
    reports = _stage_reports(report_dir)
    names, complete = report_outputs.claimed(reports)
    if not reports or not complete:
        return
    report_outputs.remove(
        report_dir,
        set(report_outputs.snapshot(report_dir)) - names,
        log,
        "that no stage of this report wrote (left from an earlier run)",
    )


def run_pipeline(
    config_path: str | Path,
    stages: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
    notebooks_dir: Path | None = None,
    log: Callable[[str], None] = print,
    reuse_only: bool = False,
    verify: bool = False,
) -> Profile:
    """Execute the profile's stages (or ``stages``) in pipeline order; returns the loaded profile.

    A stage whose artefacts are current (:mod:`agrec.run.lineage`) and whose executed notebook was made from
    them is not executed again; a stage that is stale says why and recomputes. ``force`` recomputes the
    listed stages; ``reuse_only`` refuses to compute anything (a named error lists what is not current);
    ``verify`` rehashes every artefact instead of trusting unchanged sizes and modification times.
    """

    profile = load_profile(config_path, overrides)
    wanted = stages if stages is not None else profile.pipeline.stages
    unknown = [s for s in wanted if s not in STAGE_NOTEBOOKS]
    if unknown:
        raise AgrecError(f"unknown stage(s) {unknown}; known stages: {list(STAGE_NOTEBOOKS)}")
    ordered = [s for s in STAGE_NOTEBOOKS if s in wanted]
    nb_dir = notebooks_dir or default_notebooks_dir()
    run = RunDir(profile.run_dir)
    log(
        f"agrec run: profile '{profile.name}' ({profile.source}), dataset '{profile.data.dataset}', seed {profile.seed}"
    )
    log(f"  run dir:    {profile.run_dir}")
    log(f"  report dir: {profile.report_dir}")
    if reuse_only:
        if force:
            raise AgrecError("--reuse-only and --force contradict each other")
        stale = [st for st in pipeline_status(profile, run, ordered, verify=verify) if not st.current]
        if stale:
            raise AgrecError(
                "--reuse-only: these stages are not current and would be recomputed:\n  "
                + "\n  ".join(st.line() for st in stale)
                + "\nrun without --reuse-only to recompute them (or restore the files named)"
            )
    ensure_writable(profile.run_dir)
    with locked(profile.run_dir):
        # under the lock: a second writer refused by it must not remove the folder the first is about to use
        created = _missing_folders(profile.report_dir, within=profile.reports_root / profile.data.dataset)
        ensure_writable(profile.report_dir)
        try:
            return _run_stages(profile, run, ordered, overrides, force, nb_dir, log, verify)
        except BaseException:
            _remove_if_empty(created)  # a run stopped before its first report leaves no empty report folder
            raise


def _run_stages(
    profile: Profile,
    run: RunDir,
    ordered: list[str],
    overrides: dict[str, Any] | None,
    force: bool,
    nb_dir: Path,
    log: Callable[[str], None],
    verify: bool,
) -> Profile:
    """The body of :func:`run_pipeline`, under the run folder's writer lock."""

    # Relative to the notebooks' folder (the kernel's cwd), so executed reports carry no machine paths.
    params = {"config_path": os.path.relpath(_source(profile), nb_dir), "overrides": dict(overrides or {})}
    timings_path = profile.report_dir / "results" / "pipeline.json"
    t_all = time.perf_counter()
    timings: dict[str, float | None] = {}
    usages: dict[str, dict[str, float | None] | None] = {}
    reused: list[str] = []
    refreshed: list[str] = []  # executed with the stage's artefacts already current: the report only
    for i, stage in enumerate(ordered, 1):
        nb = nb_dir / STAGE_NOTEBOOKS[stage]
        out = profile.report_dir / nb.name
        tag = f"[{i}/{len(ordered)}] {stage}"
        if not nb.is_file():
            raise StageError(f"stage '{stage}': notebook {nb} not found")
        # a forced stage recomputes whatever its status: its status is not worth the hashing
        st = None if force else stage_status(profile, run, stage, verify=verify)
        # one read of what the runner stamped into the report ({} for a missing file): whether it can be reused,
        # and which report files the execution it would replace wrote
        meta = report_outputs.read_stamp(out)
        if st is None:
            # One mechanism for every stage: whatever the stage keeps in the run folder (record, artefacts,
            # checkpoints) goes, so its notebook finds nothing of the run it replaces to resume from or reuse.
            for folder in stage_folders(stage):
                run.discard(folder)
            log(f"{tag}: forced: recomputing from nothing")
        elif st.current and meta.get("report_key") == report_key(profile, run, stage, nb, params):
            log(f"{tag}: current, reused ({out.name})")
            reused.append(stage)
            seconds = meta.get("seconds")
            timings[stage] = seconds if isinstance(seconds, (int, float)) else None
            used = StageUsage.from_dict(meta.get("resources"))
            usages[stage] = used.to_dict() if used is not None else None
            if meta.get("refreshed") is True:  # the execution that made the report only loaded the artefacts
                refreshed.append(stage)
            continue
        elif st.state == "stale":
            log(f"{tag}: stale ({'; '.join(st.reasons)}): recomputing")
        elif st.state == "missing" and stage not in REPORT_ONLY:
            log(f"{tag}: not computed yet")
        elif stage in REPORT_ONLY:
            # such a stage keeps no artefacts of its own: only its report can be missing or out of date
            what = "report out of date" if meta else "no report yet"
            log(f"{tag}: {what}; " + ("made from the current upstream stages" if st.current else "; ".join(st.reasons)))
        else:
            log(f"{tag}: artefacts current; the report is refreshed")
            refreshed.append(stage)
        if st is not None and not st.current and stage not in REPORT_ONLY:
            # The notebook must recompute, whatever its own quicker checks would conclude (e.g. an artefact
            # whose content changed under an unchanged mtime, found with --verify).
            run.invalidate(stage, log=lambda m: log(f"    {m}"))
        log(f"{tag}: {nb.name} ...")
        previous = report_outputs.outputs_of(meta)  # what the execution this one replaces wrote
        before = report_outputs.snapshot(profile.report_dir)
        meter = StageMeter()
        meter.start()
        t0 = time.perf_counter()
        execute_notebook(
            nb,
            out,
            params,
            stage,
            kernel_name=profile.pipeline.kernel_name,
            timeout_s=profile.pipeline.stage_timeout_s,
            kernel_log=profile.run_dir / "logs" / f"{nb.stem}.kernel.log",
            meter=meter,
            log=log,
        )
        seconds_run = round(time.perf_counter() - t0, 1)
        usage = meter.usage()
        timings[stage] = seconds_run
        usages[stage] = usage.to_dict()
        written = report_outputs.written_since(profile.report_dir, before)
        _stamp_report_key(
            out,
            report_key(profile, run, stage, nb, params),
            seconds_run,
            usage,
            refreshed=stage in refreshed,
            outputs=written,
        )
        log(f"{tag}: done in {seconds_run:.1f} s{_usage_note(usage)} -> {out}")
        if previous:
            others, _ = report_outputs.claimed(_stage_reports(profile.report_dir, exclude=out))
            report_outputs.remove(
                profile.report_dir,
                set(previous) - set(written) - others,
                log,
                f"that the previous execution of {stage} wrote and this one did not",
            )
    _remove_unclaimed(profile.report_dir, log)
    total = round(time.perf_counter() - t_all, 1)
    if len(reused) == len(ordered) and timings_path.is_file():
        # Nothing ran: the record of the run that made these reports stays (rewriting it would replace its
        # wall time by the seconds this check took).
        log(f"agrec run: all {len(ordered)} stage(s) current, nothing executed; {timings_path.name} kept")
        return profile
    # stages_s: seconds of each notebook's execution; for a reused stage, those of the execution that made its
    # report (which may itself have reused the stage's artefacts), None when unknown. resources: the same
    # executions' peak memory, CPU seconds and the machine's CPU seconds spent on other work
    # (agrec/run/resources.py); peak_rss_mib: the largest of the stages' peaks. refreshed: stages whose notebook
    # ran with the stage's artefacts already current (made by an earlier execution, maybe in another checkout),
    # now or in the execution a reused stage reports: their seconds are those of loading them, not computing them.
    peaks = [u["peak_rss_mib"] for u in usages.values() if u is not None and u["peak_rss_mib"] is not None]
    atomic_write_json(
        timings_path,
        {
            "stages_s": timings,
            "reused": reused,
            "refreshed": refreshed,
            "total_s": total,
            "resources": usages,
            "peak_rss_mib": max(peaks) if peaks else None,
            "versions": library_versions(),
        },
    )
    log(
        f"agrec run: {len(ordered)} stage(s) in {total:.1f} s"
        + (f" ({len(reused)} reused: {', '.join(reused)})" if reused else "")
    )
    return profile


def status(
    config_path: str | Path,
    overrides: dict[str, Any] | None = None,
    stages: list[str] | None = None,
    verify: bool = False,
) -> list["StageStatus"]:
    """``agrec status``: per stage, current / stale (and why) / missing."""

    profile = load_profile(config_path, overrides)
    return pipeline_status(profile, RunDir(profile.run_dir), stages, verify=verify)


def _grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def point_label(point: dict[str, Any]) -> str:
    """What a sweep point is, for logs: ``decode.top_n=10,decode.beam_size=20``."""
    return ",".join(f"{k}={v}" for k, v in point.items())


def point_name(point: dict[str, Any]) -> str:
    """Folder name of a sweep point: its label when that is a safe folder name (``decode.top_n=10``),
    else a sanitised label plus a short hash of it (grid values may hold ``/``, ``..`` or anything)."""
    return safe_component(point_label(point), max_len=150)


def run_sweep(
    config_path: str | Path,
    stage: str,
    grid: dict[str, list[Any]],
    overrides: dict[str, Any] | None = None,
    notebooks_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> "pd.DataFrame":
    """Run one stage's notebook once per point of a parameter grid (dotted profile keys).

    Each point writes into ``<report_dir>/sweeps/<stage>/<point>/`` (its executed notebook, figures,
    tables, ``results/<stage>.json``); the recorded results of all points are collected into
    ``<report_dir>/sweeps/<stage>/summary.csv`` with one row per point.
    """
    import pandas as pd

    if stage not in STAGE_NOTEBOOKS:
        raise AgrecError(f"unknown stage {stage!r}; known stages: {list(STAGE_NOTEBOOKS)}")
    if not grid or any(not isinstance(v, list) or not v for v in grid.values()):
        raise ConfigError(f"a sweep grid maps keys to non-empty lists of values, got {grid!r}")
    base = dict(overrides or {})
    both = sorted(set(base) & set(grid))
    if both:
        raise ConfigError(f"key(s) {both} are both overridden (--set) and swept (--grid); give each key once")
    profile = load_profile(config_path, base)
    for point in _grid_points(grid):  # validate every point before running anything
        load_profile(config_path, {**base, **point})
    nb_dir = notebooks_dir or default_notebooks_dir()
    nb = nb_dir / STAGE_NOTEBOOKS[stage]
    sweep_dir = profile.report_dir / "sweeps" / stage
    points = _grid_points(grid)
    names = [point_name(p) for p in points]
    if len(set(names)) != len(names):  # e.g. a value listed twice: the second would overwrite the first
        dup = next(point_label(p) for p, n in zip(points, names, strict=False) if names.count(n) > 1)
        raise ConfigError(f"sweep point {dup} occurs twice in the grid")
    with locked(profile.run_dir):  # a point's stage writes into the run folder like any run
        rows = _run_points(profile, stage, points, base, nb, nb_dir, sweep_dir, log)
    summary = pd.DataFrame(rows)
    with atomic_path(sweep_dir / "summary.csv") as tmp:
        summary.to_csv(tmp, index=False)
    return summary


def _run_points(
    profile: Profile,
    stage: str,
    points: list[dict[str, Any]],
    base: dict[str, Any],
    nb: Path,
    nb_dir: Path,
    sweep_dir: Path,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    rows = []
    for i, point in enumerate(points, 1):
        out_dir = safe_join(sweep_dir, point_name(point), key="--grid")
        log(f"[{i}/{len(points)}] {stage} {point_label(point)} ...")
        t0 = time.perf_counter()
        params = {
            "config_path": os.path.relpath(_source(profile), nb_dir),
            "overrides": {**base, **point},
            "report_dir": str(out_dir),
        }
        execute_notebook(
            nb,
            out_dir / nb.name,
            params,
            stage,
            kernel_name=profile.pipeline.kernel_name,
            timeout_s=profile.pipeline.stage_timeout_s,
            log=log,
        )
        log(f"[{i}/{len(points)}] {stage} {point_label(point)}: done in {time.perf_counter() - t0:.1f} s")
        res_path = out_dir / "results" / f"{stage}.json"
        res = json.loads(res_path.read_text()) if res_path.is_file() else {}
        flat = _flatten(res)
        flat.pop("format", None)  # the layout version of the results file, not a result
        rows.append({**point, **{k: v for k, v in flat.items() if isinstance(v, (int, float, str, bool))}})
    return rows


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def build_report(
    config_path: str | Path,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
    stages: list[str] | None = None,
    notebooks_dir: Path | None = None,
    log: Callable[[str], None] = print,
    reuse_only: bool = False,
    verify: bool = False,
) -> Profile:
    """Run every stage, export each executed notebook to HTML and write ``index.md``.

    This is ``agrec report`` and the README's main job: it regenerates
    ``reports/<dataset>/<profile>/`` end to end.
    """
    from agrec.run.htmlreport import export_html, install_static_assets, write_index

    profile = load_profile(config_path, overrides)
    install_static_assets(profile.reports_root)  # fail early, before hours of compute, if npm assets are absent
    run_pipeline(
        config_path,
        stages=stages,
        overrides=overrides,
        force=force,
        notebooks_dir=notebooks_dir,
        log=log,
        reuse_only=reuse_only,
        verify=verify,
    )
    wanted = stages if stages is not None else profile.pipeline.stages
    nb_names = [STAGE_NOTEBOOKS[s] for s in STAGE_NOTEBOOKS if s in wanted]
    for name in nb_names:
        nb = profile.report_dir / name
        html = nb.with_suffix(".html")
        # an HTML page newer than its notebook was exported from it (the notebook is only rewritten when rerun)
        if force or not html.is_file() or html.stat().st_mtime_ns < nb.stat().st_mtime_ns:
            export_html(nb, html, profile.reports_root)
    summary = profile.report_dir / "tables" / "results.md"
    write_index(
        profile.report_dir,
        f"AGRec report: {profile.data.dataset} / {profile.name}",
        summary.read_text() if summary.is_file() else None,
    )
    log(f"agrec report: {profile.report_dir / 'index.md'}")
    return profile
