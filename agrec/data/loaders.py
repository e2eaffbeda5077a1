"""One entry point for every supported layout: :func:`load_dataset`."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from agrec.data.config import DataConfig
from agrec.data.dataset import SeqDataset
from agrec.data.lcrec import load_lcrec
from agrec.data.movielens import load_atomic
from agrec.data.tabular import load_tabular
from agrec.errors import DataError
from agrec.progress import Task


def load_dataset(cfg: DataConfig, path: Path | None = None) -> SeqDataset:
    """Load the dataset described by ``cfg``.

    Args:
        cfg: the data section of a profile.
        path: the resolved data folder (``Profile.data_path()``); None means the embedded
            MovieLens-100k for ``format="movielens"``.
    """
    if path is not None and not path.is_dir():
        raise DataError(f"{path}: data folder not found (data.path)")
    # Two phases shown by the CLI (agrec.progress): the interactions read, then grouped by user (a large file
    # spends long in each; the items' text follows within the second).
    task = Task(f"loading {cfg.dataset}", 2, "phase")
    done = 0

    def step(phase: str) -> None:
        nonlocal done
        done += 1
        task.update(done, milestone=True, phase=phase)

    ds = _load(cfg, path, step)
    task.close(users=ds.n_users, items=ds.n_items)
    return ds


def _load(cfg: DataConfig, path: Path | None, step: Callable[[str], None]) -> SeqDataset:
    if cfg.format == "movielens":
        return load_atomic(path, cfg.dataset, cfg.min_seq_len, cfg.require_text, step=step)
    if path is None:
        raise DataError(f"data.path must be set for format '{cfg.format}'")
    if cfg.format == "lcrec":
        return load_lcrec(path, cfg.dataset, cfg.min_seq_len, cfg.require_text, step=step)
    if cfg.format == "tabular":
        return load_tabular(
            path,
            cfg.inter_file,
            cfg.item_file,
            cfg.user_col,
            cfg.item_col,
            cfg.time_col,
            cfg.text_cols,
            cfg.min_seq_len,
            cfg.require_text,
            cfg.sort_by_time,
            cfg.dataset,
            step=step,
        )
    raise DataError(f"data.format: unknown format {cfg.format!r}")  # the config's Literal type prevents this
