"""Data layer: loaders for MovieLens-100k, LC-Rec JSON and CSV/TSV, one dataset type, leave-one-out split.

Only the config is imported here (profiles load it, and loading a profile imports no loader); the other names
are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from agrec.data.config import DataConfig

_LAZY = {
    "SeqDataset": "agrec.data.dataset",
    "load_dataset": "agrec.data.loaders",
    "LeaveOneOutSplit": "agrec.data.split",
    "leave_one_out": "agrec.data.split",
    "dataset_statistics": "agrec.data.stats",
    "statistics_table": "agrec.data.stats",
}

__all__ = ["DataConfig", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agrec.data' has no attribute {name!r}")
