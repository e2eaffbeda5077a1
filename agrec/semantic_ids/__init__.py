"""Semantic item IDs: item text -> embedding -> RQ-VAE codes -> collision-free :class:`CodeTable`.

The stage entry points live in :mod:`agrec.semantic_ids.stage` (``prepare_codes``, ``prepare_semantic_ids``).
Only the config is imported with this package (the profile, :mod:`agrec.config`, imports it); the names below
are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "CodeTable": "agrec.semantic_ids.codes",
    "code_token": "agrec.semantic_ids.codes",
    "parse_code_token": "agrec.semantic_ids.codes",
    "DedupReport": "agrec.semantic_ids.dedup",
    "make_collision_free": "agrec.semantic_ids.dedup",
}

__all__ = [*_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agrec.semantic_ids' has no attribute {name!r}")
