"""Writes a stage's outputs into the report folder: tables (Markdown + CSV), figures (PNG), results.

``reports/<dataset>/<profile>/`` holds the executed notebooks, ``figures/*.png``, ``tables/*.md`` +
``tables/*.csv`` and ``results/<stage>.json`` (the numbers a notebook records, read by tests and by
the README). Every file is written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from agrec.io import atomic_path, atomic_write_json, atomic_write_text
from agrec.manifest import update_manifest

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

    def record(self, stage: str, results: dict[str, Any]) -> Path:
        """Write ``results/<stage>.json``: the numbers this stage reports, with its sha256 in
        ``results/manifest.json`` (what ``agrec table2`` checks before it reads a report's numbers)."""
        path = atomic_write_json(self.root / "results" / f"{stage}.json", results)
        update_manifest(path.parent, [path.name], RESULTS_KIND)
        return path
