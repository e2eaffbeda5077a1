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
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from agrec.config import STAGE_NOTEBOOKS, Profile, load_profile
from agrec.errors import AgrecError, StageError
from agrec.io import atomic_path, atomic_write_json
from agrec.progress import follow as follow_progress
from agrec.progress import kernel_ipc_config
from agrec.rundir import RunDir, library_versions

if TYPE_CHECKING:
    import pandas as pd


def default_notebooks_dir() -> Path:
    """``notebooks/`` of the source checkout this package runs from."""
    return Path(__file__).resolve().parents[1] / "notebooks"


def execute_notebook(notebook: Path, output: Path, parameters: dict[str, Any], stage: str,
                     kernel_name: str = "python3", timeout_s: int | None = None,
                     progress_bar: bool | None = None) -> Path:
    """Execute ``notebook`` with papermill into ``output`` atomically.

    On a cell error, raise :class:`StageError` naming the stage, the cell and the exception, and
    keep the partial notebook as ``<output stem>.FAILED.ipynb``.
    """
    import papermill as pm  # heavy import; only the runner needs it

    if not notebook.is_file():
        raise StageError(f"stage '{stage}': notebook {notebook} not found")
    output.parent.mkdir(parents=True, exist_ok=True)
    failed = output.with_name(output.stem + ".FAILED.ipynb")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{output.stem}.", suffix=".tmp.ipynb", dir=output.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    if progress_bar is None:  # papermill's cells bar would fight the inner progress line for the terminal
        progress_bar = False
    try:
        # The stage's inner progress (epochs, users, items) is printed from the kernel's events file; the
        # kernel talks to us over IPC sockets, not unencrypted TCP (whose ipykernel warning is noise here).
        with follow_progress(output.with_name(f".{output.stem}.progress.jsonl"), stream=sys.stdout):
            pm.execute_notebook(str(notebook), str(tmp), parameters=parameters, cwd=str(notebook.parent),
                                kernel_name=kernel_name, progress_bar=progress_bar, execution_timeout=timeout_s,
                                log_output=False, config=kernel_ipc_config())
    except pm.PapermillExecutionError as e:
        os.replace(tmp, failed)
        raise StageError(f"stage '{stage}' failed in {notebook.name}, cell {e.cell_index} "
                         f"(execution count {e.exec_count}): {e.ename}: {e.evalue}\n"
                         f"the partial notebook is at {failed}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _tidy_papermill_metadata(tmp, notebook, output)
    os.replace(tmp, output)
    failed.unlink(missing_ok=True)
    return output


def _tidy_papermill_metadata(executed: Path, notebook: Path, output: Path) -> None:
    """Record the final, repository-relative paths instead of the temp file's absolute path."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    meta = nb.metadata.get("papermill", {})
    meta["input_path"] = os.path.relpath(notebook, output.parent)
    meta["output_path"] = output.name
    nbformat.write(nb, executed)


def run_pipeline(config_path: str | Path, stages: list[str] | None = None, overrides: dict[str, Any] | None = None,
                 force: bool = False, notebooks_dir: Path | None = None,
                 log: Callable[[str], None] = print) -> Profile:
    """Execute the profile's stages (or ``stages``) in pipeline order; returns the loaded profile."""
    profile = load_profile(config_path, overrides)
    wanted = stages if stages is not None else profile.pipeline.stages
    unknown = [s for s in wanted if s not in STAGE_NOTEBOOKS]
    if unknown:
        raise AgrecError(f"unknown stage(s) {unknown}; known stages: {list(STAGE_NOTEBOOKS)}")
    ordered = [s for s in STAGE_NOTEBOOKS if s in wanted]
    nb_dir = notebooks_dir or default_notebooks_dir()
    run = RunDir(profile.run_dir)
    if force:
        for s in ordered:
            run.invalidate(s)
    log(f"agrec run: profile '{profile.name}' ({profile.source}), dataset '{profile.data.dataset}', "
        f"seed {profile.seed}")
    log(f"  run dir:    {profile.run_dir}")
    log(f"  report dir: {profile.report_dir}")
    # Relative to the notebooks' folder (the kernel's cwd), so executed reports carry no machine paths.
    params = {"config_path": os.path.relpath(profile.source, nb_dir), "overrides": dict(overrides or {})}
    t_all = time.perf_counter()
    timings: dict[str, float] = {}
    for i, stage in enumerate(ordered, 1):
        nb = nb_dir / STAGE_NOTEBOOKS[stage]
        out = profile.report_dir / nb.name
        log(f"[{i}/{len(ordered)}] {stage}: {nb.name} ...")
        t0 = time.perf_counter()
        execute_notebook(nb, out, params, stage, kernel_name=profile.pipeline.kernel_name,
                         timeout_s=profile.pipeline.stage_timeout_s)
        timings[stage] = round(time.perf_counter() - t0, 1)
        log(f"[{i}/{len(ordered)}] {stage}: done in {timings[stage]:.1f} s -> {out}")
    total = round(time.perf_counter() - t_all, 1)
    atomic_write_json(profile.report_dir / "results" / "pipeline.json",
                      {"stages_s": timings, "total_s": total, "versions": library_versions()})
    log(f"agrec run: {len(ordered)} stage(s) done in {total:.1f} s")
    return profile


def _grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def point_name(point: dict[str, Any]) -> str:
    """Folder name of a sweep point: ``decode.alpha=0.3,decode.tau=1``."""
    return ",".join(f"{k}={v}" for k, v in point.items())


def run_sweep(config_path: str | Path, stage: str, grid: dict[str, list[Any]],
              overrides: dict[str, Any] | None = None, notebooks_dir: Path | None = None,
              log: Callable[[str], None] = print) -> "pd.DataFrame":
    """Run one stage's notebook once per point of a parameter grid (dotted profile keys).

    Each point writes into ``<report_dir>/sweeps/<stage>/<point>/`` (its executed notebook, figures,
    tables, ``results/<stage>.json``); the recorded results of all points are collected into
    ``<report_dir>/sweeps/<stage>/summary.csv`` with one row per point.
    """
    import pandas as pd

    if stage not in STAGE_NOTEBOOKS:
        raise AgrecError(f"unknown stage {stage!r}; known stages: {list(STAGE_NOTEBOOKS)}")
    if not grid or any(not isinstance(v, list) or not v for v in grid.values()):
        raise AgrecError(f"a sweep grid maps keys to non-empty lists of values, got {grid!r}")
    base = dict(overrides or {})
    profile = load_profile(config_path, base)
    for point in _grid_points(grid):  # validate every point before running anything
        load_profile(config_path, {**base, **point})
    nb_dir = notebooks_dir or default_notebooks_dir()
    nb = nb_dir / STAGE_NOTEBOOKS[stage]
    sweep_dir = profile.report_dir / "sweeps" / stage
    rows = []
    points = _grid_points(grid)
    for i, point in enumerate(points, 1):
        out_dir = sweep_dir / point_name(point)
        log(f"[{i}/{len(points)}] {stage} {point_name(point)} ...")
        t0 = time.perf_counter()
        params = {"config_path": os.path.relpath(profile.source, nb_dir), "overrides": {**base, **point},
                  "report_dir": str(out_dir)}
        execute_notebook(nb, out_dir / nb.name, params, stage, kernel_name=profile.pipeline.kernel_name,
                         timeout_s=profile.pipeline.stage_timeout_s)
        log(f"[{i}/{len(points)}] {stage} {point_name(point)}: done in {time.perf_counter() - t0:.1f} s")
        res_path = out_dir / "results" / f"{stage}.json"
        res = json.loads(res_path.read_text()) if res_path.is_file() else {}
        rows.append({**point, **{k: v for k, v in _flatten(res).items() if isinstance(v, (int, float, str, bool))}})
    summary = pd.DataFrame(rows)
    with atomic_path(sweep_dir / "summary.csv") as tmp:
        summary.to_csv(tmp, index=False)
    return summary


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def build_report(config_path: str | Path, overrides: dict[str, Any] | None = None, force: bool = False,
                 stages: list[str] | None = None, notebooks_dir: Path | None = None,
                 log: Callable[[str], None] = print) -> Profile:
    """Run every stage, export each executed notebook to HTML and write ``index.md``.

    This is ``agrec report`` and the README's main job: it regenerates
    ``reports/<dataset>/<profile>/`` end to end.
    """
    from agrec.htmlreport import export_html, install_static_assets, write_index

    profile = load_profile(config_path, overrides)
    install_static_assets(profile.reports_root)  # fail early, before hours of compute, if npm assets are absent
    run_pipeline(config_path, stages=stages, overrides=overrides, force=force, notebooks_dir=notebooks_dir, log=log)
    wanted = stages if stages is not None else profile.pipeline.stages
    nb_names = [STAGE_NOTEBOOKS[s] for s in STAGE_NOTEBOOKS if s in wanted]
    for name in nb_names:
        nb = profile.report_dir / name
        export_html(nb, nb.with_suffix(".html"), profile.reports_root)
    summary = profile.report_dir / "tables" / "results.md"
    write_index(profile.report_dir, f"AGRec report: {profile.data.dataset} / {profile.name}",
                summary.read_text() if summary.is_file() else None)
    log(f"agrec report: {profile.report_dir / 'index.md'}")
    return profile
