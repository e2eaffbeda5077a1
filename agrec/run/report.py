"""Writes a stage's outputs into the report folder: tables (Markdown + CSV), figures (PNG), results.

``reports/<dataset>/<profile>/`` holds the executed notebooks, ``figures/*.png``, ``tables/*.md`` +
``tables/*.csv`` and ``results/<stage>.json`` (the numbers a notebook records, read by tests, by
``agrec table2`` and by parameter sweeps). Every file is written atomically.

Each ``results/<stage>.json`` carries the version of its layout, ``"format"``. The module that builds a stage's
results owns that number beside its builder (``data_results`` in :mod:`agrec.data.stage`, ``decode_record`` in
:mod:`agrec.analysis.table2`, …), and every library reader asks :func:`read_results` for the versions it knows.
A file without ``"format"`` was written before the layouts had numbers and reads as format 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, overload

import pandas as pd

from agrec.errors import AgrecError
from agrec.io import atomic_path, atomic_write_json, atomic_write_text, check_format, read_json_file
from agrec.manifest import check_manifest, update_manifest

RESULTS_KIND = "agrec report results"


class Report:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def table(self, name: str, df: pd.DataFrame, floatfmt: str = ".4f", index: bool = False) -> pd.DataFrame:
        """Write ``tables/<name>.md`` and ``tables/<name>.csv``; return ``df`` for display."""
        atomic_write_text(self.root / "tables" / f"{name}.md", df.to_markdown(index=index, floatfmt=floatfmt) + "\n")
        with atomic_path(self.root / "tables" / f"{name}.csv") as tmp:
            df.to_csv(tmp, index=index)
        return df

    def figure(self, name: str, fig: Any, dpi: int = 120) -> Path:
        """Save a matplotlib figure as ``figures/<name>.png``."""
        path = self.root / "figures" / f"{name}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        return path

    def record(self, stage: str, results: dict[str, Any], fmt: int) -> Path:
        """Write ``results/<stage>.json``: the numbers this stage reports, stamped with their layout's version
        ``fmt`` (the builder's ``RESULTS_FORMAT``), with its sha256 in ``results/manifest.json`` (what
        :func:`read_results` checks before it reads a report's numbers)."""
        if "format" in results:
            raise ValueError(f"results of {stage!r} hold a 'format' entry; the writer stamps it")
        path = atomic_write_json(self.root / "results" / f"{stage}.json", {"format": fmt, **results})
        update_manifest(path.parent, [path.name], RESULTS_KIND)
        return path


@overload
def read_results(report_dir: str | Path, stage: str, fmt: int, required: Literal[True] = ...) -> dict[str, Any]: ...
@overload
def read_results(report_dir: str | Path, stage: str, fmt: int, required: bool) -> dict[str, Any] | None: ...
def read_results(report_dir: str | Path, stage: str, fmt: int, required: bool = True) -> dict[str, Any] | None:
    """``results/<stage>.json`` of a report folder, checked against the folder's manifest and read only if its
    layout is version ``fmt`` (a file without a version is format 1). Missing: a named error, or None when not
    ``required``. Anything else (edited, not JSON, another version) is an :class:`AgrecError` naming the file."""
    folder = Path(report_dir) / "results"
    path = folder / f"{stage}.json"
    remedy = "rerun the stages that write the report's results (agrec run --config <profile>) to rewrite them"
    if not path.is_file():
        if not required:
            return None
        raise AgrecError(f"{path}: no {stage} results (run the pipeline's {stage} stage for this profile first)")
    check_manifest(folder, RESULTS_KIND, [path.name], remedy)
    d = read_json_file(path, remedy)
    if not isinstance(d, dict):
        raise AgrecError(f"{path}: the top level is not an object; {remedy}")
    check_format(path, d.get("format", 1), f"{stage} results", newest=fmt, oldest=fmt, remedy=remedy)
    return d
